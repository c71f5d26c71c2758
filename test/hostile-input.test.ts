// The checked-in hostile-input corpus (test/fixtures/hostile/index.json) against a running server, on
// the c2s TCP port (RFC 6120) and the WebSocket endpoint (RFC 7395): each case gets its stream error
// (or, where the WebSocket layer refuses the frame itself, a closed connection), the connection closes,
// nothing reaches the bystander the stanzas are addressed to, and the bystander's session keeps working.
// Malformed protobuf frames on the mobile endpoint are answered, and do not end the connection.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";
import { WireClient, type Endpoint } from "./helpers/wire-client.js";
import { decodeFrame, encodeFrame, type DecodeResult } from "../src/mobile/codec.js";
import type { Element } from "../src/xml/element.js";

const corpusDir = fileURLToPath(new URL("../../test/fixtures/hostile/", import.meta.url));

interface HostileCase {
  name: string;
  file?: string;
  repeat?: { head: string; unit: string; times: number; tail: string };
  phase: "connect" | "open" | "login";
  tcp: string | null;
  ws: string | null;
  about: string;
}

const corpus = JSON.parse(readFileSync(corpusDir + "index.json", "utf8")) as { cases: HostileCase[] };

function payload(c: HostileCase): Buffer {
  if (c.file !== undefined) return readFileSync(corpusDir + c.file);
  const r = c.repeat!;
  const parts = [r.head];
  for (let i = 0; i < r.times; i++) parts.push(r.unit.replaceAll("{i}", String(i)));
  parts.push(r.tail);
  return Buffer.from(parts.join(""), "utf8");
}

describe("hostile input corpus (issue 9)", function () {
  this.timeout(120_000);
  let ts: TestServer;
  let bystander: WireClient;
  before(async () => {
    ts = await startTestServer();
    for (const name of ["bystander", "mallory"]) await ts.accounts.create(ts.host, name, "password");
    bystander = await WireClient.connect(ts, "tcp");
    await bystander.login("bystander", "password");
    bystander.send("<presence/>");
    await bystander.receive((el) => el.name === "presence");
  });
  after(async () => {
    bystander?.close();
    await ts.stop();
  });

  it("has one file per case and an expectation for each endpoint", () => {
    assert.ok(corpus.cases.length >= 50);
    for (const c of corpus.cases) {
      assert.ok(c.tcp !== null || c.ws !== null, c.name);
      if (c.file !== undefined) assert.ok(payload(c).length > 0, c.name);
    }
  });

  for (const endpoint of ["tcp", "ws"] as const) {
    for (const c of corpus.cases) {
      const expected = c[endpoint];
      if (expected === null) continue;
      it(`${endpoint}: ${c.name} → ${expected} (${c.about})`, async () => {
        const attacker = await WireClient.connect(ts, endpoint);
        if (c.phase === "open") await attacker.open();
        else if (c.phase === "login") await attacker.login("mallory", "password");
        attacker.send(payload(c));
        await attacker.closed(20_000);
        if (expected !== "close") assert.equal(attacker.streamError, expected);
        assert.deepEqual(attacker.check.errors, [], "what the server wrote to the attacker is well-formed");
        await bystander.ping();
      });
    }
  }

  it("the bystander received none of it, and everything it received was namespace-well-formed", async () => {
    await bystander.ping();
    const chats = bystander.received.filter((el: Element) => el.name === "message");
    assert.deepEqual(chats.map(String), []);
    assert.equal(await ts.server.context.store.timeline.count("bystander@localhost", {}), 0);
    assert.equal(bystander.closedNow, false);
    assert.deepEqual(bystander.check.errors, []);
  });
});

describe("hostile input: malformed protobuf on the mobile endpoint", function () {
  let ts: MobileTestServer;
  before(async () => { ts = await startMobileServer(); });
  after(() => ts.stop());

  /** Sends raw frames on a fresh connection; returns the decoded replies and the close code, if it closed. */
  async function exchange(frames: Array<Buffer | Uint8Array | string>, wait = 300): Promise<{ replies: Array<DecodeResult | string>; closeCode: number | null }> {
    const ws = new WebSocket(ts.mobileUrl, "hearth.mobile.v1");
    await new Promise<void>((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
    const replies: Array<DecodeResult | string> = [];
    let closeCode: number | null = null;
    ws.on("message", (data: Buffer, isBinary) => replies.push(isBinary ? decodeFrame(new Uint8Array(data), 1 << 24) : data.toString()));
    ws.on("error", () => {});
    const closed = new Promise<void>((resolve) => ws.on("close", (code) => { closeCode = code; resolve(); }));
    for (const f of frames) ws.send(f, { binary: typeof f !== "string" });
    await Promise.race([closed, new Promise((r) => setTimeout(r, wait))]);
    ws.terminate();
    return { replies, closeCode };
  }

  const ping = encodeFrame(7, "ping", { clientTime: 1 });
  const malformed: Array<[string, Buffer | string]> = [
    ["random bytes", Buffer.from("8f3a01ffffffffffffffffff01", "hex")],
    ["a truncated length-delimited field", Buffer.from([0x0a, 0x7f, 0x01, 0x02])],
    ["a field with wire type 7", Buffer.from([0x0f, 0x00])],
    ["a varint of eleven bytes", Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])],
    ["an empty frame", Buffer.alloc(0)],
    ["a text frame", "<message/>"],
  ];
  for (const [title, frame] of malformed) {
    it(`${title}: answered, the connection stays open and still serves a ping`, async () => {
      const { replies, closeCode } = await exchange([frame, ping]);
      assert.equal(closeCode, null);
      assert.equal(replies.length, 2, JSON.stringify(replies));
      const [answer, pong] = replies as Array<DecodeResult & { ok: true }>;
      assert.equal(answer.envelope.payload, "error");
      assert.equal(pong.envelope.requestId, 7);
      assert.equal(pong.envelope.payload, "pong");
    });
  }

  it("a frame over four times the frame limit closes the connection with 1009", async () => {
    const { closeCode } = await exchange([Buffer.alloc(4 * 65536 + 1024, 0x41)], 3000);
    assert.equal(closeCode, 1009);
  });
});
