// A client's messages in flight (C2sSession.takeTurn): the messages of one session that are archived before
// delivery are handled while the earlier ones commit, so a burst goes into a few group commits instead of one
// each; deliveries keep the order the client sent in, and anything else it sends (a chat state, an iq) is
// handled only after every message before it is done.
import assert from "node:assert/strict";
import { createHook } from "node:async_hooks";
import { xml, type Element } from "../src/xml/element.js";
import parsePrometheus from "parse-prometheus-text-format";
import { startTestServer, testStoreDriver, type TestServer } from "./helpers/server.js";
import { onlineUser, type RawClient } from "./helpers/raw-client.js";

const MAM = "urn:xmpp:mam:2";
const CHATSTATES = "http://jabber.org/protocol/chatstates";

/** Group commits of the timeline so far (the count of the batch-size histogram at /metrics). */
async function commits(ts: TestServer): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${ts.httpPort}/metrics`)).text();
  const family = parsePrometheus(text).find((f) => f.name === "hearth_timeline_commit_batch_size");
  assert.ok(family, "the commit batch-size histogram is exposed");
  return family.metrics.reduce((n, m) => n + Number((m as { count?: string }).count ?? 0), 0);
}

/** The next `n` messages `c` receives from `from`, in arrival order. */
async function messagesFrom(c: RawClient, from: string, n: number): Promise<Element[]> {
  const out: Element[] = [];
  while (out.length < n) out.push(await c.receive((el) => el.name === "message" && el.attrs.from?.startsWith(from + "/") === true, 10_000));
  return out;
}

describe("a client's messages in flight", () => {
  let ts: TestServer;
  let alice: RawClient, bob: RawClient;
  before(async () => {
    ts = await startTestServer();
    alice = await onlineUser(ts, "pipe-alice");
    bob = await onlineUser(ts, "pipe-bob");
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await ts?.stop();
  });

  it("commits a burst of one client's messages in a few group commits and delivers them in order", async () => {
    const n = 40;
    const before = await commits(ts);
    // One write: the server reads them all at once. Bare and full JID addressing take different paths.
    const bobBare = bob.jid.split("/")[0];
    alice.send(Array.from({ length: n }, (_, i) =>
      xml("message", { type: "chat", to: i % 2 === 0 ? bobBare : bob.jid, id: `b${i}` }, xml("body", null, `burst ${i}`)).toString()).join(""));
    const got = await messagesFrom(bob, alice.jid.split("/")[0], n);
    assert.deepEqual(got.map((m) => m.getChildText("body")), Array.from({ length: n }, (_, i) => `burst ${i}`));
    // Every one carries its archive id, and they are distinct.
    const ids = got.map((m) => m.getChild("stanza-id", "urn:xmpp:sid:0")?.attrs.id);
    assert.equal(new Set(ids).size, n);
    const used = (await commits(ts)) - before;
    // One at a time, each message waits for its own commit: n commits. In flight, up to 16 share one. On
    // PostgreSQL several batches are written at once and take their seqs in the order they commit, so a
    // session's messages there are handled one at a time, each in a commit of its own.
    if (testStoreDriver === "sqlite") assert.ok(used <= n / 4, `${n} messages took ${used} group commits`);
    else assert.equal(used, n);
  });

  it("keeps no promise per message while a burst waits for its commits", async () => {
    const n = 200;
    // A pair of its own: the other tests page through alice's and bob's archive.
    const carol = await onlineUser(ts, "pipe-carol"), dave = await onlineUser(ts, "pipe-dave");
    const daveBare = dave.jid.split("/")[0];
    const burst = Array.from({ length: n }, (_, i) =>
      xml("message", { type: "chat", to: i % 2 === 0 ? daveBare : dave.jid, id: `p${i}` }, xml("body", null, `promise ${i}`)).toString()).join("");
    // Every promise the process makes from the burst's write to its last delivery: the server's, and the
    // test's one wait for that last message (the others gather in the raw client's inbox without one).
    let promises = 0;
    const hook = createHook({ init(_id, type) { if (type === "PROMISE") promises++; } }).enable();
    try {
      carol.send(burst);
      await dave.receive((el) => el.name === "message" && el.attrs.id === `p${n - 1}`, 10_000);
    } finally {
      hook.disable();
    }
    // A message that waits for its commit as a chain of promises (the append's, the wait for the session's
    // previous message, the hook run's, the router's, the session's) made six of them, which live as long as
    // the wait and, under load, outlive the young generation. On SQLite the message waits as one object
    // (TurnDelivery) and the session's turn. On PostgreSQL a session's messages go one at a time, through the
    // handlers' promises.
    if (testStoreDriver === "sqlite") assert.ok(promises < n / 4, `${n} messages made ${promises} promises`);
    // The rest arrived before the last, in the order sent.
    const got: Element[] = [];
    for (let i = 0; i < n - 1; i++) got.push(await dave.receive((el) => el.name === "message" && el.attrs.id?.startsWith("p") === true));
    assert.deepEqual(got.map((m) => m.getChildText("body")), Array.from({ length: n - 1 }, (_, i) => `promise ${i}`));
    carol.close();
    dave.close();
  });

  it("holds a chat state and an iq behind the messages before them", async () => {
    const bobBare = bob.jid.split("/")[0];
    const sent: string[] = [];
    const parts: string[] = [];
    for (let i = 0; i < 30; i++) {
      if (i % 5 === 4) {
        // No body: not archived, delivered at once, so it must wait for the messages in flight before it.
        parts.push(xml("message", { type: "chat", to: bobBare, id: `s${i}` }, xml("composing", { xmlns: CHATSTATES })).toString());
        sent.push(`state ${i}`);
      } else {
        parts.push(xml("message", { type: "chat", to: bobBare, id: `m${i}` }, xml("body", null, `mixed ${i}`)).toString());
        sent.push(`mixed ${i}`);
      }
    }
    // An archive query right behind them sees every message sent before it.
    parts.push(xml("iq", { type: "set", id: "mam-after-burst" },
      xml("query", { xmlns: MAM, queryid: "after-burst" },
        xml("x", { xmlns: "jabber:x:data", type: "submit" },
          xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", null, MAM)),
          xml("field", { var: "with" }, xml("value", null, bobBare))),
        xml("set", { xmlns: "http://jabber.org/protocol/rsm" }, xml("max", null, "100")))).toString());
    alice.send(parts.join(""));

    const got = await messagesFrom(bob, alice.jid.split("/")[0], sent.length);
    assert.deepEqual(got.map((m) => m.getChildText("body") ?? (m.getChild("composing", CHATSTATES) ? `state ${m.attrs.id!.slice(1)}` : "?")), sent);

    const archived: string[] = [];
    for (;;) {
      const el = await alice.receive((e) => (e.name === "iq" && e.attrs.id === "mam-after-burst") ||
        (e.name === "message" && e.getChild("result", MAM)?.attrs.queryid === "after-burst"), 10_000);
      if (el.name === "iq") {
        assert.equal(el.attrs.type, "result");
        break;
      }
      archived.push(el.getChild("result", MAM)!.getChild("forwarded", "urn:xmpp:forward:0")!.getChild("message")!.getChildText("body")!);
    }
    const mixed = sent.filter((s) => s.startsWith("mixed"));
    assert.deepEqual(archived.slice(-mixed.length), mixed);
  });

  it("keeps the order when the stanza rate limit holds some of a burst back", async () => {
    // A bucket of 5 refilled at 20/s: most of the 25 wait for tokens while earlier ones are in flight.
    const limited = await startTestServer({ limits: { stanzasPerSecond: 20, stanzaBurst: 5 } });
    try {
      const a = await onlineUser(limited, "rate-alice");
      const b = await onlineUser(limited, "rate-bob");
      const bBare = b.jid.split("/")[0];
      a.send(Array.from({ length: 25 }, (_, i) => i === 12
        ? xml("message", { type: "chat", to: bBare, id: "r-state" }, xml("composing", { xmlns: CHATSTATES })).toString()
        : xml("message", { type: "chat", to: bBare, id: `r${i}` }, xml("body", null, `rate ${i}`)).toString()).join(""));
      const got = await messagesFrom(b, a.jid.split("/")[0], 25);
      assert.deepEqual(got.map((m) => m.getChildText("body") ?? "state"),
        Array.from({ length: 25 }, (_, i) => (i === 12 ? "state" : `rate ${i}`)));
      a.close();
      b.close();
    } finally {
      await limited.stop();
    }
  });

  it("answers a message to an unknown user with an error and still delivers the rest in order", async () => {
    const bobBare = bob.jid.split("/")[0];
    alice.send([0, 1, 2, 3, 4, 5].map((i) =>
      xml("message", { type: "chat", to: i === 2 ? "nobody-here@localhost" : bobBare, id: `e${i}` }, xml("body", null, `err ${i}`)).toString()).join(""));
    const error = await alice.receive((el) => el.name === "message" && el.attrs.type === "error" && el.attrs.id === "e2", 10_000);
    assert.ok(error.getChild("error")?.getChild("service-unavailable"));
    const got = await messagesFrom(bob, alice.jid.split("/")[0], 5);
    assert.deepEqual(got.map((m) => m.getChildText("body")), ["err 0", "err 1", "err 3", "err 4", "err 5"]);
  });
});
