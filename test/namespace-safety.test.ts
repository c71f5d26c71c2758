// Issue 9.1: a stanza that is not namespace-well-formed (Namespaces in XML 1.0; RFC 6120 §4.9.3.2,
// §4.9.3.13) ends the sender's stream and is neither relayed nor stored; a row stored by an older
// server that let one through is skipped, so it can no longer break the victim's stream at every login
// (XEP-0160 offline delivery) or MAM query (XEP-0313). Recipients' streams are checked with saxes.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { WireClient, type Endpoint } from "./helpers/wire-client.js";
import type { Element } from "../src/xml/element.js";

const MAM = "urn:xmpp:mam:2";
let n = 0;
const fresh = (name: string) => `${name}${++n}`;

describe("namespace well-formedness end to end (issue 9.1)", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  async function user(name: string, endpoint: Endpoint = "tcp", presence = true): Promise<WireClient> {
    if (!(await ts.accounts.exists(ts.host, name))) await ts.accounts.create(ts.host, name, "password");
    const c = await WireClient.connect(ts, endpoint);
    await c.login(name, "password");
    if (presence) {
      c.send("<presence/>");
      await c.receive((el) => el.name === "presence");
    }
    return c;
  }

  const timelineSize = (name: string) => ts.server.context.store.timeline.count(`${name}@localhost`, {});
  const isChat = (el: Element) => el.name === "message" && el.getChild("body") !== undefined;

  const poisoned: Array<[string, (to: string) => string, string]> = [
    ["an undeclared element prefix", (to) => `<message to='${to}' type='chat'><body>evil</body><foo:bar/></message>`, "bad-namespace-prefix"],
    ["an undeclared attribute prefix", (to) => `<message to='${to}' type='chat' foo:x='1'><body>evil</body></message>`, "bad-namespace-prefix"],
    ["a declaration of the prefix xmlns", (to) => `<message to='${to}' type='chat' xmlns:xmlns='urn:x'><body>evil</body></message>`, "not-well-formed"],
    ["duplicate attributes after namespace expansion", (to) => `<message to='${to}' type='chat' xmlns:a='urn:a' xmlns:b='urn:a' a:k='1' b:k='2'><body>evil</body></message>`, "not-well-formed"],
  ];
  for (const endpoint of ["tcp", "ws"] as const) {
    for (const [title, stanza, condition] of poisoned) {
      it(`${endpoint}: ${title} ends the sender's stream with ${condition}; online and offline recipients get nothing, nothing is stored`, async () => {
        const online = fresh("online");
        const offline = fresh("offline");
        const senderName = fresh("mallory");
        const recipient = await user(online);
        await ts.accounts.create(ts.host, offline, "password");
        const sender = await user(senderName, endpoint);
        sender.send(stanza(`${online}@localhost`));
        await sender.closed();
        assert.equal(sender.streamError, condition);
        const second = await user(senderName, endpoint);
        second.send(stanza(`${offline}@localhost`));
        await second.closed();
        assert.equal(second.streamError, condition);

        await recipient.ping();
        assert.deepEqual(recipient.received.filter(isChat), []);
        assert.deepEqual(recipient.check.errors, []);
        assert.equal(await timelineSize(online), 0);
        assert.equal(await timelineSize(offline), 0);
        assert.equal(await timelineSize(senderName), 0);
        recipient.close();
      });
    }
  }

  it("a prefix declared on the sender's stream header reaches the recipient with its declaration", async () => {
    const juliet = await user(fresh("juliet"));
    const romeoName = fresh("romeo");
    await ts.accounts.create(ts.host, romeoName, "password");
    const romeo = await WireClient.connect(ts, "tcp");
    // RFC 6120 §4.3.3: the restarted stream's header declares one more prefix, which the stanza then uses
    await romeo.login(romeoName, "password", { header: " xmlns:h='urn:example:h'" });
    romeo.send(`<message to='${juliet.jid.split("/")[0]}' type='chat'><body>hi</body><h:x h:k='1'/></message>`);
    const got = await juliet.receive(isChat);
    assert.equal(got.getChild("x")!.attrs["xmlns:h"], "urn:example:h");
    await juliet.ping();
    assert.deepEqual(juliet.check.errors, []);
    juliet.close();
    romeo.close();
  });

  for (const endpoint of ["tcp", "ws"] as const) {
    it(`${endpoint}: a poisoned row stored by an older server is skipped at login and in MAM; the messages around it arrive`, async () => {
      const victim = fresh("victim");
      await ts.accounts.create(ts.host, victim, "password");
      const owner = `${victim}@localhost`;
      const row = (i: number, xmlText: string) => ({
        owner, peer: "mallory@localhost", outgoing: false, stanzaId: `old-${victim}-${i}`, originId: null,
        ts: Date.now() - 60_000 + i, pending: true, xml: xmlText,
      });
      const from = `from='mallory@localhost/x' to='${owner}' type='chat'`;
      // As an older server wrote them: the stanza as routed, undeclared prefixes and all.
      await ts.server.context.store.timeline.append([
        row(1, `<message ${from}><body>before</body></message>`),
        row(2, `<message ${from}><body>evil</body><foo:bar/></message>`),
        row(3, `<message ${from} foo:x='1'><body>evil too</body></message>`),
        row(4, `<message ${from}><body>after</body></message>`),
      ]);
      const c = await user(victim, endpoint);
      const offline = [await c.receive(isChat), await c.receive(isChat)];
      assert.deepEqual(offline.map((el) => el.getChildText("body")), ["before", "after"]);

      c.send(`<iq type='set' id='mam1'><query xmlns='${MAM}' queryid='q1'/></iq>`);
      const fin = await c.receive((el) => el.name === "iq" && el.attrs.id === "mam1");
      assert.equal(fin.attrs.type, "result");
      const results = c.received.filter((el) => el.getChild("result", MAM) !== undefined);
      const bodies = results.map((el) => el.getChild("result", MAM)!.getChild("forwarded")!.getChild("message")!.getChildText("body"));
      assert.deepEqual(bodies, ["before", "after"]);
      await c.ping();
      assert.equal(c.closedNow, false);
      assert.deepEqual(c.check.errors, []);
      c.close();
    });
  }
});
