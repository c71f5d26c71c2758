// Limits on what another server may do (RFC 6120 §13 security considerations): a smaller stanza size
// before it authenticates, a rate per incoming stream, a cap on streams per remote domain and per address,
// and a deadline for authenticating. Each refusal is a stream error for that peer only; everyone else
// keeps being served.
import assert from "node:assert/strict";
import type { TestServer } from "./helpers/server.js";
import { type RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { ScriptedPeer, federatedPair } from "./helpers/s2s-peer.js";
import { dialbackKey } from "../src/s2s/dialback.js";
import { xml, type Element } from "../src/xml/element.js";

const SECRET = "a secret shared by the limits test";
const isMessageWith = (body: string) => (el: Element) => el.name === "message" && el.getChildText("body") === body;

describe("s2s: limits on a peer", function () {
  let a: TestServer;
  let b: TestServer;
  let alice: RawClient;
  let bob: RawClient;

  before(async () => {
    [a, b] = await federatedPair((domain) => domain === "a.test" ? { s2s: { dialbackSecret: SECRET } } : {
      limits: { authTimeoutSeconds: 3 },
      s2s: { dialbackSecret: SECRET, maxStanzaBytesPreAuth: 4096, stanzasPerSecond: 5, stanzaBurst: 5, maxStreamsPerDomain: 2, maxStreamsPerIp: 6 },
    });
    [alice, bob] = await Promise.all([onlineUser(a, "alice"), onlineUser(b, "bob")]);
  });
  after(async () => {
    alice?.close();
    bob?.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  const toB = () => ScriptedPeer.connect("127.0.0.3", b.server.s2s.port!);

  /** A stream to b.test from "a.test" after STARTTLS. */
  async function secured(): Promise<ScriptedPeer> {
    const peer = await toB();
    await peer.open("a.test", "b.test");
    await peer.startTls("b.test");
    await peer.open("a.test", "b.test");
    return peer;
  }

  /** Sends a.test's real dialback key; resolves with b.test's answer (or the stream's end). */
  async function dialback(peer: ScriptedPeer): Promise<string | undefined> {
    peer.send(xml("db:result", { from: "a.test", to: "b.test" }, dialbackKey(SECRET, "b.test", "a.test", peer.streamId)));
    return Promise.race([
      peer.receive((el) => el.name === "db:result", 8000).then((el) => el.attrs.type),
      peer.closed(8000).then(() => undefined),
    ]);
  }

  it("ends with policy-violation an element over s2s.maxStanzaBytesPreAuth before authentication, and allows limits.maxStanzaBytes after", async () => {
    const early = await secured();
    early.send(xml("db:result", { from: "a.test", to: "b.test" }, "k".repeat(5000)));
    assert.equal(errorCondition(await early.closed()), "policy-violation");

    const peer = await secured();
    assert.equal(await dialback(peer), "valid");
    const big = "x".repeat(20_000);
    peer.send(xml("message", { from: "alice@a.test/big", to: "bob@b.test", type: "chat" }, xml("body", null, big)));
    assert.equal((await bob.receive(isMessageWith(big), 5000)).attrs.from, "alice@a.test/big");
    peer.destroy();
  });

  it("refuses more authenticated streams for one domain than s2s.maxStreamsPerDomain", async () => {
    // The real a.test → b.test stream (alice's messages) is the first.
    alice.send(xml("message", { to: "bob@b.test", type: "chat" }, xml("body", null, "opens the real stream")));
    await bob.receive(isMessageWith("opens the real stream"), 8000);
    await waitFor(() => b.server.s2s.incoming().filter((s) => s.pairs.length > 0).length === 1);
    const first = await secured();
    assert.equal(await dialback(first), "valid", "the second stream for a.test is allowed");
    const second = await secured();
    assert.equal(await dialback(second), undefined, "the third is not");
    assert.equal(errorCondition(await second.closed()), "policy-violation");
    first.destroy();
    await waitFor(() => b.server.s2s.incoming().filter((s) => s.pairs.length > 0).length === 1);
    const third = await secured();
    assert.equal(await dialback(third), "valid", "a closed stream frees its place");
    third.destroy();
  });

  it("reads a peer over s2s.stanzasPerSecond more slowly, losing nothing", async () => {
    const peer = await secured();
    assert.equal(await dialback(peer), "valid");
    const start = Date.now();
    for (let i = 0; i < 20; i++) peer.send(xml("message", { from: "alice@a.test/r", to: "bob@b.test", type: "chat" }, xml("body", null, `rate ${i}`)));
    for (let i = 0; i < 20; i++) await bob.receive(isMessageWith(`rate ${i}`), 10_000);
    // 5 in the burst, the other 15 at 5 a second: at least 3 s (2 s leaves room for timer rounding).
    assert.ok(Date.now() - start >= 2000, `20 stanzas took only ${Date.now() - start} ms`);
    peer.destroy();
  });

  it("closes with connection-timeout a peer that does not authenticate within limits.authTimeoutSeconds", async () => {
    const peer = await secured();
    assert.equal(errorCondition(await peer.closed(10_000)), "connection-timeout");
  });

  it("refuses more connections from one address than s2s.maxStreamsPerIp", async () => {
    await waitFor(() => b.server.s2s.incoming().length <= 1);
    const already = b.server.s2s.incoming().length;
    const open = await Promise.all(Array.from({ length: 6 - already }, () => toB()));
    await Promise.all(open.map((p) => p.open("x.test", "b.test")));
    const extra = await toB();
    assert.equal(errorCondition(await extra.closed()), "policy-violation");
    for (const p of open) p.destroy();
  });

  it("keeps serving everyone else", async () => {
    await waitFor(() => b.server.s2s.incoming().length <= 1);
    alice.send(xml("message", { to: "bob@b.test", type: "chat" }, xml("body", null, "still here")));
    await bob.receive(isMessageWith("still here"), 8000);
    bob.send(xml("message", { to: "alice@a.test", type: "chat" }, xml("body", null, "me too")));
    await alice.receive(isMessageWith("me too"), 8000);
  });
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}
