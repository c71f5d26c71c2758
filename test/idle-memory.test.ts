// What an idle connection keeps (the rig's "idle KiB per connection"): a parser between stanzas holds no
// element stack and only exact-size arrays of the header's namespace bindings, and a session's stored
// presence has children arrays of their exact size. Measured as JS heap retained per parser / element after
// a full GC, over 2,000 of them; and what a connection that opened its stream keeps on the server (with
// the test's own minimal client socket), over 400 of them.
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { StreamParser } from "../src/xml/parser.js";
import { parseJid as makeJid } from "../src/jid/jid.js";
import { SessionRegistry } from "../src/sessions/registry.js";
import { LazyMap, type Session } from "../src/sessions/session.js";
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
    // About 725 bytes (up to 745 from run to run): 950 with four arrays of its own for the usual header's one binding, 1,020 with a copy
    // of the header's names ("stream", "xmlns:stream" and the stream namespace) per parser, 1,230 with slices
    // of the header, and 1,700 with V8's growth capacity left in the stack and the four namespace arrays.
    assert.ok(each < 850, `a parser keeps ${each.toFixed(0)} bytes`);
  });

  it("a parser keeps nothing of the text it parsed: no slice of the header or of the last stanza", () => {
    // 4 KB in each chunk, as an attribute of the header and of the stanza's last tag: whatever the parser kept
    // of either chunk (an attribute object, a namespace name cut from the header) would hold all of it.
    const pad = "x".repeat(4096);
    const each = retainedEach(() => {
      const p = new StreamParser({ onStreamStart() {}, onStanza() {}, onStreamEnd() {}, onError() {} });
      p.write(HEADER.replace(" version=", ` pad='${pad}${Math.random()}' version=`));
      p.write(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping' pad='${pad}${Math.random()}'/></iq>`);
      return p;
    });
    assert.ok(each < 1_450, `a parser keeps ${each.toFixed(0)} bytes`);
  });

  it("the session registry keeps no map for a user with one resource", () => {
    const registry = new SessionRegistry();
    let i = 0;
    const sessions = Array.from({ length: N }, () => ({ jid: makeJid(`u${i++}@example.org/r`) }) as unknown as Session);
    for (const s of sessions) s.jid!.bareString(); // the JIDs' own strings, made before the measurement
    let next = 0;
    const each = retainedEach(() => { registry.add(sessions[next]); return sessions[next++]; });
    assert.equal(registry.size, N);
    // The registry's own entry (its share of the table) is about 30 bytes; a Map per user was 180 more.
    assert.ok(each < 100, `registering a session keeps ${each.toFixed(0)} bytes`);
    // Two resources, then one again.
    const second = { jid: makeJid("u0@example.org/other") } as unknown as Session;
    registry.add(second);
    assert.deepEqual(registry.resources("u0@example.org"), [sessions[0], second]);
    assert.equal(registry.getResource("u0@example.org", "other"), second);
    assert.equal(registry.remove(sessions[0]), true);
    assert.equal(registry.remove(sessions[0]), false);
    assert.deepEqual(registry.resources("u0@example.org"), [second]);
    assert.equal(registry.getResource("u0@example.org", "r"), undefined);
    assert.equal(registry.size, N);
    assert.equal([...registry.all()].length, N);
  });

  it("a session's per-module state keeps no table until a module writes to it", () => {
    const each = retainedEach(() => new LazyMap<string, unknown>());
    // About 16 bytes; an empty Map is about 180.
    assert.ok(each < 60, `an empty per-module state keeps ${each.toFixed(0)} bytes`);
    const data = new LazyMap<string, unknown>();
    assert.equal(data.get("a"), undefined);
    assert.equal(data.delete("a"), false);
    data.set("a", 1).set("b", true);
    assert.deepEqual([...data], [["a", 1], ["b", true]]);
    assert.equal(data.size, 2);
    assert.equal(data.has("b"), true);
    assert.equal(data.delete("a"), true);
    assert.deepEqual([...data.keys()], ["b"]);
    data.clear();
    assert.equal(data.size, 0);
    assert.deepEqual([...data.entries()], []);
  });

  it("a parsed message keeps children arrays of its elements' own size", () => {
    // What each of the thousands of messages waiting for their commit under load keeps of its parse.
    let last: Element | null = null;
    const parser = new StreamParser({ onStreamStart() {}, onStanza(el) { last = el; }, onStreamEnd() {}, onError() {} });
    parser.write(HEADER);
    let i = 0;
    const each = retainedEach(() => {
      parser.write(`<message to='u${i}@localhost' type='chat' id='m${i++}'><body>hello</body></message>`);
      return last!;
    });
    assert.equal(last!.toString(), `<message to="u${i - 1}@localhost" type="chat" id="m${i - 1}"><body>hello</body></message>`);
    // 530-560 bytes, with the text of the chunk the attributes are slices of; 810 when the first child of
    // <message/> and of <body/> went into an array with room for 17.
    assert.ok(each < 680, `a parsed message keeps ${each.toFixed(0)} bytes`);
  });

  it("a compacted presence keeps children arrays of their exact size", () => {
    let last: Element | null = null;
    const parser = new StreamParser({ onStreamStart() {}, onStanza(el) { last = el; }, onStreamEnd() {}, onError() {} });
    parser.write(HEADER);
    const parsed = (): Element => { parser.write(PRESENCE); return last!; };
    const plain = retainedEach(parsed);
    const compacted = retainedEach(() => compact(parsed()));
    assert.equal(compact(parsed()).toString(), parsed().toString());
    // The parser gives a first child an array of its own size, but <presence/>'s grows for the second and
    // third: 130-150 bytes more than exact-size ones here (370 before the parser sized first children);
    // a no-op compact() would save nothing.
    assert.ok(plain - compacted > 60, `compacting saved ${(plain - compacted).toFixed(0)} bytes (${plain.toFixed(0)} -> ${compacted.toFixed(0)})`);
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
    // About 3,870 bytes; 4,050 with four namespace arrays per parser, 4,520 with a "close" listener, a once("close") wrapper, an "error" closure and a
    // list of closers per socket; 5,000 with slices of the stream header kept; and with the parser's events
    // as four closures of the session and the transport's end-of-tick write as a closure of its own, 5,400.
    assert.ok(each < 4_200, `an open stream keeps ${each.toFixed(0)} bytes`);
  });
});
