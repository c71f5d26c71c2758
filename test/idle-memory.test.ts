// What an idle connection keeps (the rig's "idle KiB per connection"): a parser between stanzas holds no
// element stack and only exact-size arrays of the header's namespace bindings, and a session's stored
// presence has children arrays of their exact size. Measured as JS heap retained per parser / element after
// a full GC, over 2,000 of them; and what a connection that opened its stream keeps on the server (with
// the test's own minimal client socket), over 400 of them.
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { StreamParser } from "../src/xml/parser.js";
import { compact, type Element } from "../src/xml/element.js";
import net from "node:net";
import { startTestServer, type TestServer } from "./helpers/server.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

const N = 10_000;
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
const PRESENCE = "<presence><priority>1</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/><status>here</status></presence>";

/** JS heap retained per object that `make` returns, after a full GC. */
function retainedEach<T>(make: () => T): number {
  const keep: T[] = [];
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < N; i++) keep.push(make());
  gc();
  const after = process.memoryUsage().heapUsed;
  assert.equal(keep.length, N);
  return (after - before) / N;
}

describe("what an idle connection keeps", () => {
  it("a parser between stanzas keeps no stack and exact-size namespace arrays", () => {
    const each = retainedEach(() => {
      const p = new StreamParser({ onStreamStart() {}, onStanza() {}, onStreamEnd() {}, onError() {} });
      p.write(HEADER);
      p.write(PRESENCE);
      return p;
    });
    // About 1,230 bytes; with V8's growth capacity left in the stack and the four namespace arrays, 1,700.
    assert.ok(each < 1_450, `a parser keeps ${each.toFixed(0)} bytes`);
  });

  it("a compacted presence keeps children arrays of their exact size", () => {
    let last: Element | null = null;
    const parser = new StreamParser({ onStreamStart() {}, onStanza(el) { last = el; }, onStreamEnd() {}, onError() {} });
    parser.write(HEADER);
    const parsed = (): Element => { parser.write(PRESENCE); return last!; };
    const plain = retainedEach(parsed);
    const compacted = retainedEach(() => compact(parsed()));
    assert.equal(compact(parsed()).toString(), parsed().toString());
    // The parser's children arrays (presence, priority, status) carry V8's growth capacity: 240-370 bytes
    // more than exact-size ones here; a no-op compact() would save nothing.
    assert.ok(plain - compacted > 150, `compacting saved ${(plain - compacted).toFixed(0)} bytes (${plain.toFixed(0)} -> ${compacted.toFixed(0)})`);
  });
});

describe("what an idle c2s connection keeps on the server", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(async () => { await ts.stop(); });

  /** Heap per connection that opened its stream and got its features (client sockets: minimal, counted too). */
  async function heapPerOpenStream(n: number): Promise<number> {
    const sockets: net.Socket[] = [];
    gc();
    const before = process.memoryUsage().heapUsed;
    await Promise.all(Array.from({ length: n }, () => new Promise<void>((resolve, reject) => {
      const s = net.connect({ port: ts.c2sPort, host: "127.0.0.1" }, () => s.write(HEADER.replace("to='localhost'", `to='${ts.host}'`)));
      let seen = "";
      s.setEncoding("utf8");
      s.on("data", (d: string) => { seen += d; if (seen.includes("</stream:features>")) { seen = ""; resolve(); } });
      s.once("error", reject);
      sockets.push(s);
    })));
    await new Promise((r) => setTimeout(r, 50));
    gc();
    const each = (process.memoryUsage().heapUsed - before) / n;
    for (const s of sockets) s.destroy();
    return each;
  }

  it("keeps no per-connection closures for its parser or its writes", async function () {
    await heapPerOpenStream(50); // code paths compiled, pools filled
    const each = await heapPerOpenStream(400);
    // About 5,000 bytes; with the parser's events as four closures of the session and the transport's
    // end-of-tick write as a closure of its own, about 5,400.
    assert.ok(each < 5_250, `an open stream keeps ${each.toFixed(0)} bytes`);
  });
});
