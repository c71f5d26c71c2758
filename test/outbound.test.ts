// Bounded outbound buffering (issue 9 point 3): a session whose peer does not read is closed once its
// unsent output passes c2s.maxOutboundBytes, so one slow reader can neither grow the server's memory
// nor slow the others down; what it did not receive stays in its timeline for the next login.
import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { startMobileServer, mobileUser, type MobileTestServer } from "./helpers/mobile-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { parseFramedElement } from "../src/xml/parser.js";
import type { C2sSession } from "../src/c2s/session.js";

const PING = "urn:xmpp:ping";
const MAM = "urn:xmpp:mam:2";
const MiB = 1024 * 1024;
const BIG = "x".repeat(100 * 1024);
const SENDERS = 10;
const PER_SENDER = 60;
/** c2s.maxOutboundBytes for the TCP case: small beside the 60 MiB flood, so the bound is unmistakable. */
const LIMIT = 1 * MiB;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gc = (globalThis as { gc?: () => void }).gc;

function rss(): number {
  gc?.();
  return process.memoryUsage().rss;
}

async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Round trips of a bystander's pings to the server while `work` runs. */
async function pingsDuring<T>(bystander: RawClient, work: () => Promise<T>): Promise<{ result: T; rtts: number[] }> {
  const rtts: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = performance.now();
      await bystander.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: PING })), 10_000);
      rtts.push(performance.now() - t);
      await sleep(25);
    }
  })();
  try {
    return { result: await work(), rtts };
  } finally {
    running = false;
    await loop;
  }
}

/**
 * Ten senders push 100 KiB messages at `to`; each waits for a ping answer every few messages, and that
 * answer tells it the server has processed (stored) every message before it. Returns the bodies' keys.
 */
async function flood(ts: TestServer, to: string, prefix: string, perSender = PER_SENDER): Promise<string[]> {
  const senders: RawClient[] = [];
  for (let i = 0; i < SENDERS; i++) senders.push(await onlineUser(ts, `${prefix}sender${i}`));
  const keys: string[] = [];
  await Promise.all(senders.map(async (s, i) => {
    for (let k = 0; k < perSender; k++) {
      const key = `${prefix}-${i}-${k}`;
      s.send(xml("message", { to, type: "chat", id: key }, xml("body", null, `${key} ${BIG}`)));
      keys.push(key);
      if (k % 4 === 3 || k === perSender - 1) await s.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: PING })), 30_000);
    }
  }));
  for (const s of senders) s.close();
  return keys;
}

const keyOf = (m: Element) => m.getChildText("body")?.split(" ")[0] ?? "";

/** Every message of the user's archive from `prefix` senders (XEP-0313), by key. */
async function archived(c: RawClient, prefix: string): Promise<Set<string>> {
  const keys = new Set<string>();
  let after: string | undefined;
  for (let page = 0; page < 100; page++) {
    const id = `mam${page}`;
    c.send(xml("iq", { type: "set", id }, xml("query", { xmlns: MAM, queryid: id },
      xml("set", { xmlns: "http://jabber.org/protocol/rsm" }, xml("max", null, "10"), after ? xml("after", null, after) : null))));
    for (;;) {
      const el = await c.receive((e) => (e.name === "iq" && e.attrs.id === id) || e.getChild("result", MAM)?.attrs.queryid === id, 10_000);
      if (el.name === "iq") {
        assert.equal(el.attrs.type, "result", el.toString());
        const fin = el.getChild("fin", MAM)!;
        if (fin.attrs.complete === "true") return keys;
        after = fin.getChild("set", "http://jabber.org/protocol/rsm")!.getChildText("last")!;
        break;
      }
      const key = keyOf(el.getChild("result", MAM)!.getChild("forwarded")!.getChild("message")!);
      if (key.startsWith(`${prefix}-`)) keys.add(key);
    }
  }
  throw new Error("the archive did not end");
}

describe("bounded outbound buffering (slow readers)", function () {
  this.timeout(120_000);

  describe("c2s over TCP", () => {
    let ts: TestServer;
    before(async () => {
      ts = await startTestServer({ c2s: { maxOutboundBytes: LIMIT } });
      // The same traffic to a user who is offline first: the store's page cache and the heap reach their
      // working size, so what the slow reader adds is measured on its own.
      await ts.accounts.create(ts.host, "warmup", "password");
      await flood(ts, "warmup@localhost", "w");
    });
    after(() => ts.stop());

    it("closes a reader that stops reading, keeps memory and the other sessions' latency bounded, and gives it what it missed at the next login", async () => {
      const slow = await onlineUser(ts, "slow");
      slow.pauseReading();
      const bystander = await onlineUser(ts, "bystander");
      const rssBefore = rss();
      let peak = rssBefore;
      // What the server holds for the slow reader: its session's unsent output, sampled while the flood runs.
      let peakUnsent = 0;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
        const session = ts.server.context.sessions.resources("slow@localhost")[0] as C2sSession | undefined;
        if (session) peakUnsent = Math.max(peakUnsent, session.unsentBytes);
      }, 10);
      let keys: string[];
      let rtts: number[];
      try {
        ({ result: keys, rtts } = await pingsDuring(bystander, () => flood(ts, "slow@localhost", "c")));
      } finally {
        clearInterval(sampler);
      }
      // The server closed it: no resource of slow@localhost is left.
      assert.equal(ts.server.context.sessions.resources("slow@localhost").length, 0, "the slow reader is still connected");
      const growth = (peak - rssBefore) / MiB;
      const worst = Math.max(...rtts);
      console.log(`      unsent output peak ${(peakUnsent / MiB).toFixed(1)} MiB, RSS growth ${growth.toFixed(1)} MiB (peak), bystander ping worst ${worst.toFixed(0)} ms, median ${rtts.sort((a, b) => a - b)[rtts.length >> 1].toFixed(1)} ms over ${rtts.length}`);
      // The flood is 60 MiB; without the cap the server queues nearly all of it for the reader. With it, the
      // reader's backlog never passes the ceiling (8 × the limit) plus what one tick delivers (a few messages:
      // allowed 4 MiB). The test process's RSS, logged above, moves with the machine's load and GC timing
      // (it reached 78 MiB on a loaded CI machine with the cap), so it is not what is asserted.
      assert.ok(peakUnsent > LIMIT, `the flood never filled the reader's buffer (${peakUnsent} bytes)`);
      assert.ok(peakUnsent <= 8 * LIMIT + 4 * MiB, `the server held ${(peakUnsent / MiB).toFixed(1)} MiB for the slow reader`);
      assert.ok(worst < 1000, `a bystander's ping took ${worst.toFixed(0)} ms`);

      // RFC 6120 §4.9.3.12: the stream error follows what was queued before it (when the peer reads on
      // before the server gives up waiting for it).
      slow.resumeReading();
      const ended = await slow.closed(10_000).catch(() => null);
      if (ended) assert.equal(errorCondition(ended), "policy-violation");

      // The next login: the archive (XEP-0313) holds every message the senders had confirmed.
      // Without initial presence (no offline flush): the archive holds every message either way.
      const again = await RawClient.connect(ts);
      await again.login("slow", "password", "again");
      const all = await archived(again, "c");
      assert.deepEqual([...all].sort(), [...keys].sort());
      again.close();
      bystander.close();
    });
  });

  describe("c2s over WebSocket (RFC 7395)", () => {
    let ts: TestServer;
    before(async () => { ts = await startTestServer({ c2s: { maxOutboundBytes: 1024 * 1024 } }); });
    after(() => ts.stop());

    it("closes a WebSocket client that stops reading", async () => {
      await ts.accounts.create(ts.host, "wslow", "password");
      const ws = new WebSocket(`ws://127.0.0.1:${ts.httpPort}/xmpp-websocket`, "xmpp");
      const inbox: Element[] = [];
      const next = (match: (el: Element) => boolean) => until(() => inbox.some(match), 5000, "a WebSocket element");
      ws.on("message", (d) => inbox.push(parseFramedElement(d.toString())));
      await new Promise((r) => ws.once("open", r));
      const open = `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`;
      ws.send(open);
      await next((el) => el.name === "stream:features");
      ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from("\0wslow\0password").toString("base64")}</auth>`);
      await next((el) => el.name === "success");
      inbox.length = 0;
      ws.send(open);
      await next((el) => el.name === "stream:features");
      ws.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
      await next((el) => el.name === "iq" && el.attrs.id === "b");
      ws.send("<presence/>");
      await next((el) => el.name === "presence");
      const closed = new Promise((r) => ws.once("close", r));
      ws.pause();

      await flood(ts, "wslow@localhost", "ws", 30);
      assert.equal(ts.server.context.sessions.resources("wslow@localhost").length, 0, "the slow WebSocket reader is still connected");
      ws.resume();
      await closed;
    });
  });

  describe("mobile", () => {
    let ts: MobileTestServer;
    before(async () => { ts = await startMobileServer({ maxPendingOutputBytes: 1024 * 1024, requestsPerSecond: 0, syncBatch: 10 }); });
    after(() => ts.stop());

    it("closes a device that stops reading with 1008, and its next login syncs what it missed", async () => {
      const device = await mobileUser(ts, "mslow", { deviceId: "phone1" });
      const closed = device.closed(60_000);
      device.ws.pause();
      const keys = await flood(ts, "mslow@localhost", "m", 30);
      // Pushed live, the device goes over the limit; caught up from the timeline (rows that reached it out of
      // order), the catch-up waits for it to read and closes it once it has read nothing for a second.
      await until(() => ts.server.context.sessions.resources("mslow@localhost").length === 0, 10_000, "the slow device to be closed");
      device.ws.resume();
      // RFC 6455 §7.4.1: 1008, the endpoint's policy, seen when the device reads on before the server
      // stops waiting for its close handshake (else the connection is dropped: 1006).
      assert.ok([1008, 1006].includes((await closed).code));

      const again = await mobileUser(ts, "mslow", { deviceId: "phone1" });
      const got = new Set([...again.messages.values()].map((m) => m.body.split(" ")[0]));
      for (const key of keys) assert.ok(got.has(key), `${key} was not synced`);
      again.close();
    });
  });
});
