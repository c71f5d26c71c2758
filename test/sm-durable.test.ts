// XEP-0198 resumption that survives the node: the server process is killed with SIGKILL and started again
// on the same data, and the client resumes with its previd and h (README "Phones").
import assert from "node:assert/strict";
import type { RawClient } from "./helpers/raw-client.js";
import { ServerProcess, bodiesUntilQuiet, plainLogin, resumeOn, smLogin } from "./helpers/server-process.js";
import { xml, type Element } from "../src/xml/element.js";

const SM = "urn:xmpp:sm:3";
const DELAY = "urn:xmpp:delay";
const isSm = (name: string) => (el: Element) => el.name === name && el.attrs.xmlns === SM;
const isChat = (el: Element) => el.name === "message" && el.getChild("body") !== undefined;

const chat = (to: string, text: string) => xml("message", { to, type: "chat", id: text }, xml("body", null, text));

describe("XEP-0198 resumption after the server process was killed (SIGKILL) and restarted", function () {
  this.timeout(90_000);
  let server: ServerProcess;
  const clients: RawClient[] = [];
  const track = (c: RawClient) => { clients.push(c); return c; };

  before(async () => {
    server = await ServerProcess.create("sm-kill", []);
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await server?.dispose();
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") process.stderr.write(`--- server stderr ---\n${server.output()}\n`);
  });

  it("resends exactly the unacknowledged messages, in order, once, then what arrived while the node was down", async () => {
    await server.addUser("romeo@localhost", "password");
    await server.addUser("juliet@localhost", "password");
    await server.start();
    const { c: juliet, id } = await smLogin(server, "juliet", "phone");
    track(juliet);
    const romeo = track(await plainLogin(server, "romeo", "pc"));
    // Stanza 1 to juliet was her own presence; messages 1..5 are stanzas 2..6.
    for (let i = 1; i <= 5; i++) romeo.send(chat("juliet@localhost", `m${i}`));
    const got: string[] = [];
    for (let i = 1; i <= 5; i++) got.push((await juliet.receive(isChat)).getChildText("body")!);
    assert.deepEqual(got, ["m1", "m2", "m3", "m4", "m5"]);
    // She acknowledges up to m2 (h=3) and the node dies before it could note anything more.
    juliet.send(xml("a", { xmlns: SM, h: "3" }));
    await new Promise((r) => setTimeout(r, 200));
    await server.kill("SIGKILL");
    juliet.destroy();
    romeo.destroy();

    await server.start();
    // While juliet is gone, romeo writes again: an offline message for her.
    const romeo2 = track(await plainLogin(server, "romeo", "pc"));
    romeo2.send(chat("juliet@localhost", "m6"));
    await romeo2.nothing(isChat, 300);
    // Her client had received m3 too (h=4), which the server never heard of.
    const { c: juliet2, answer } = await resumeOn(server, "juliet", id, 4);
    track(juliet2);
    assert.equal(answer.name, "resumed", answer.toString());
    assert.equal(answer.attrs.previd, id);
    assert.equal(answer.attrs.h, "1", "the server handled one stanza of hers: the presence");
    const after = await bodiesUntilQuiet(juliet2);
    assert.deepEqual(after.map((m) => m.getChildText("body")), ["m4", "m5", "m6"]);
    for (const m of after) assert.ok(m.getChild("delay", DELAY), "resent and offline messages carry a XEP-0203 delay");
    // The resumed session is the bound resource again: a new message reaches it at once, once.
    romeo2.send(chat("juliet@localhost/phone", "m7"));
    const live = await juliet2.receive(isChat, 5000);
    assert.equal(live.getChildText("body"), "m7");
    assert.equal(live.getChild("delay", DELAY), undefined);
    await juliet2.nothing(isChat, 500);
    // The server's count of her stanzas goes on from the record.
    juliet2.send(xml("r", { xmlns: SM }));
    const a = await juliet2.receive(isSm("a"));
    assert.equal(a.attrs.h, "1");
  });
});

describe("XEP-0198 resumption refused after the timeout, across a SIGKILL", function () {
  this.timeout(90_000);
  let server: ServerProcess;
  const clients: RawClient[] = [];

  before(async () => { server = await ServerProcess.create("sm-timeout", [], "smResumeSeconds: 2"); });
  after(async () => {
    for (const c of clients) c.destroy();
    await server?.dispose();
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") process.stderr.write(`--- server stderr ---\n${server.output()}\n`);
  });

  it("answers <failed h=…> with item-not-found, and the unacknowledged messages come at the next login with a delay", async () => {
    await server.addUser("romeo@localhost", "password");
    await server.addUser("juliet@localhost", "password");
    await server.start();
    const { c: juliet, id } = await smLogin(server, "juliet", "phone");
    const romeo = await plainLogin(server, "romeo", "pc");
    clients.push(juliet, romeo);
    for (const text of ["a", "b", "c"]) romeo.send(chat("juliet@localhost", text));
    for (let i = 0; i < 3; i++) await juliet.receive(isChat);
    // Her presence and "a" acknowledged.
    juliet.send(xml("a", { xmlns: SM, h: "2" }));
    juliet.send(xml("r", { xmlns: SM }));
    await juliet.receive(isSm("a"));
    // Acks reach the record within a second (README): the node dies after that.
    await new Promise((r) => setTimeout(r, 1500));
    await server.kill("SIGKILL");
    await server.start();
    // The record of a session that died with its node is resumable for at most 2 × max after its last write.
    await new Promise((r) => setTimeout(r, 5000));
    const { c: late, answer } = await resumeOn(server, "juliet", id, 2);
    clients.push(late);
    assert.equal(answer.name, "failed", answer.toString());
    assert.ok(answer.getChild("item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    assert.equal(answer.attrs.h, "1", "the h the server had reached: her presence");
    const next = await plainLogin(server, "juliet", "laptop", false);
    clients.push(next);
    next.send(xml("presence"));
    const offline = await bodiesUntilQuiet(next);
    assert.deepEqual(offline.map((m) => m.getChildText("body")), ["b", "c"]);
    for (const m of offline) assert.ok(m.getChild("delay", DELAY), "XEP-0203 delay on offline messages");
  });
});
