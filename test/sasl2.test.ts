// SASL2 (XEP-0388) + Bind2 (XEP-0386) + FAST (XEP-0484) with xmpp.js as the client: the login, the resource,
// stream management and carbons in one exchange, and a password-less token login on the next connection.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { xml } from "../src/xml/element.js";
import { BIND2, CARBONS, SASL2, jsClient, rawTokenLogin, stanza, type Token } from "./helpers/sasl2-client.js";

const SM = "urn:xmpp:sm:3";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

describe("SASL2, Bind2 and FAST", function () {
  this.timeout(30000);
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  it("logs in, binds, enables stream management and carbons in one exchange (xmpp.js), and the carbon arrives", async () => {
    const user = fresh("romeo");
    await ts.accounts.create("localhost", user, "password");
    const juliet = await onlineUser(ts, fresh("juliet"));
    const other = await onlineUser(ts, user, { resource: "desk" });
    const { xmpp, sent, received } = jsClient(ts, user, "password", "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0001");
    try {
      await xmpp.start();
      // Before online the client sent only SASL2 elements: <authenticate/> (with everything inline) and one
      // SCRAM <response/>; no iq bind, no <enable/>, no carbons iq, no stream restart.
      const negotiation = sent.filter((el) => el.name !== "presence");
      assert.deepEqual(negotiation.map((el) => el.name), ["authenticate", "response"]);
      const auth = negotiation[0];
      assert.equal(auth.attrs.xmlns, SASL2);
      const bind = auth.getChild("bind", BIND2)!;
      assert.ok(bind.getChild("enable", CARBONS), "carbons requested inline");
      assert.ok(bind.getChild("enable", SM), "stream management requested inline");
      const success = received.find((el) => el.name === "success" && el.attrs.xmlns === SASL2)!;
      const jid = success.getChildText("authorization-identifier")!;
      assert.match(jid, new RegExp(`^${user}@localhost/phone\\.[0-9a-f]+$`));
      assert.equal(xmpp.jid!.toString(), jid);
      const enabled = success.getChild("bound", BIND2)!.getChild("enabled", SM)!;
      assert.equal(enabled.attrs.resume, "true");
      assert.equal(received.filter((el) => el.name === "stream:features").length, 1, "one features element: no restart");
      const session = ts.server.context.sessions.resources(`${user}@localhost`).find((s) => s.jid?.toString() === jid)!;
      assert.deepEqual(session.data.get("user-agent"), { id: "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0001", software: "hearth-test", device: "ci" });

      // Carbons were enabled by Bind2: what the desk resource sends reaches the phone as a <sent/> carbon.
      const carbon = stanza(xmpp, (el) => el.getChild("sent", CARBONS) !== undefined);
      other.send(xml("message", { to: juliet.jid, type: "chat", id: "m1" }, xml("body", null, "good night")));
      await juliet.receive((el) => el.getChildText("body") === "good night");
      const copy = await carbon;
      assert.equal(copy.attrs.from, `${user}@localhost`);
      assert.equal(copy.getChild("sent", CARBONS)!.getChild("forwarded")!.getChild("message")!.getChildText("body"), "good night");
    } finally {
      await xmpp.stop().catch(() => {});
      juliet.close();
      other.close();
    }
  });

  it("answers malformed SASL2 input with the standard failure, and ends the stream after three", async () => {
    const c = await RawClient.connect(ts);
    try {
      await c.open();
      const failure = async (el: ReturnType<typeof xml>, condition: string) => {
        c.send(el);
        const answer = await c.receive((e) => e.attrs.xmlns === SASL2);
        assert.equal(answer.name, "failure");
        assert.ok(answer.getChild(condition), `${condition} expected, got ${answer.toString()}`);
      };
      await failure(xml("authenticate", { xmlns: SASL2, mechanism: "SCRAM-SHA-256" }, xml("initial-response", null, "not base64!")), "incorrect-encoding");
      await failure(xml("authenticate", { xmlns: SASL2, mechanism: "X-UNKNOWN" }), "invalid-mechanism");
      // FAST without a user agent to bind the token to.
      c.send(xml("authenticate", { xmlns: SASL2, mechanism: "HT-SHA-256-NONE" }, xml("initial-response", null, Buffer.from("a\0b").toString("base64"))));
      assert.ok((await c.receive((e) => e.attrs.xmlns === SASL2)).getChild("malformed-request"));
      const end = await c.closed();
      assert.equal(end?.getChild("policy-violation")?.name, "policy-violation");
    } finally {
      c.close();
    }
  });

  it("refuses a wrong password with a SASL2 not-authorized failure", async () => {
    const user = fresh("tybalt");
    await ts.accounts.create("localhost", user, "password");
    const { xmpp } = jsClient(ts, user, "wrong-password", "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0002");
    await assert.rejects(xmpp.start(), (err: { condition?: string }) => err.condition === "not-authorized");
    await xmpp.stop().catch(() => {});
  });
});
