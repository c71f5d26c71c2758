// SASL2 (XEP-0388) + Bind2 (XEP-0386) + FAST (XEP-0484) with xmpp.js as the client: the login, the resource,
// stream management and carbons in one exchange, and a password-less token login on the next connection.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { client, xml as jsxml } from "@xmpp/client";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const SASL2 = "urn:xmpp:sasl:2";
const BIND2 = "urn:xmpp:bind:0";
const FAST = "urn:xmpp:fast:0";
const CARBONS = "urn:xmpp:carbons:2";
const SM = "urn:xmpp:sm:3";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

type Xmpp = ReturnType<typeof client>;
interface Token { mechanism: string; token: string; expiry: string }

/** An xmpp.js client that asks Bind2 to enable carbons, recording what it sends and receives. */
function jsClient(ts: TestServer, username: string, password: string, agentId: string): { xmpp: Xmpp; sent: Element[]; received: Element[] } {
  const xmpp = client({
    service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username, password, resource: "phone",
    userAgent: jsxml("user-agent", { id: agentId }, jsxml("software", {}, "hearth-test"), jsxml("device", {}, "ci")),
  } as Parameters<typeof client>[0]);
  // COMPAT: @xmpp/client upgrades whenever STARTTLS is offered and checks the certificate; the test
  // server's is self-signed and TLS is optional here, so the client is shown no STARTTLS.
  xmpp.prependListener("element", (el: Element) => {
    if (el.name === "stream:features") el.remove("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
  });
  (xmpp.bind2 as unknown as { use(ns: string, req: () => unknown): void }).use(CARBONS, () => jsxml("enable", { xmlns: CARBONS }));
  const sent: Element[] = [];
  const received: Element[] = [];
  xmpp.on("send", (el: Element) => sent.push(el));
  xmpp.on("element", (el: Element) => received.push(el));
  xmpp.on("error", () => {});
  return { xmpp, sent, received };
}

/** Waits for an incoming stanza of the xmpp.js client. */
function stanza(xmpp: Xmpp, match: (el: Element) => boolean, ms = 5000): Promise<Element> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { xmpp.removeListener("stanza", on); reject(new Error("no matching stanza")); }, ms);
    const on = (el: Element) => { if (match(el)) { clearTimeout(t); xmpp.removeListener("stanza", on); resolve(el); } };
    xmpp.on("stanza", on);
  });
}

/** A raw SASL2 token login (HT-SHA-256-NONE) to see the server's exact answer. */
async function rawTokenLogin(ts: TestServer, user: string, token: string, agentId: string): Promise<Element> {
  const c = await RawClient.connect(ts);
  try {
    const features = await c.open();
    assert.ok(features.getChild("authentication", SASL2)?.getChild("inline")?.getChild("fast", FAST), "FAST is offered inline");
    const hmac = createHmac("sha256", Buffer.from(token, "utf8")).update("Initiator").digest();
    const initial = Buffer.concat([Buffer.from(`${user}\0`, "utf8"), hmac]).toString("base64");
    c.send(xml("authenticate", { xmlns: SASL2, mechanism: "HT-SHA-256-NONE" },
      xml("initial-response", null, initial), xml("user-agent", { id: agentId }), xml("fast", { xmlns: FAST })));
    return await c.receive((el) => el.attrs.xmlns === SASL2);
  } finally {
    c.close();
  }
}

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

  it("refuses a wrong password with a SASL2 not-authorized failure", async () => {
    const user = fresh("tybalt");
    await ts.accounts.create("localhost", user, "password");
    const { xmpp } = jsClient(ts, user, "wrong-password", "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0002");
    await assert.rejects(xmpp.start(), (err: { condition?: string }) => err.condition === "not-authorized");
    await xmpp.stop().catch(() => {});
  });

  it("issues a FAST token at a password login, logs in with it without the password, and refuses it after a password change", async () => {
    const user = fresh("mercutio");
    const agent = "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0003";
    await ts.accounts.create("localhost", user, "password");
    let token: Token | null = null;
    const first = jsClient(ts, user, "password", agent);
    first.xmpp.fast.saveToken = async (t: Token) => { token = t; };
    await first.xmpp.start();
    await first.xmpp.stop();
    assert.ok(token, "a token was issued");
    const issued = token as Token;
    assert.equal(issued.mechanism, "HT-SHA-256-NONE");
    assert.ok(new Date(issued.expiry).getTime() > Date.now() + 86_400_000);
    const stored = await ts.server.context.accounts.login.tokens.list(`${user}@localhost`);
    assert.equal(stored.length, 1);
    assert.ok(!JSON.stringify(stored).includes(issued.token), "the token itself is not stored");

    // The next connection proves the token; the password it holds is wrong, so only the token can succeed.
    const second = jsClient(ts, user, "not-the-password", agent);
    second.xmpp.fast.fetchToken = async () => issued;
    await second.xmpp.start();
    const success = second.received.find((el) => el.name === "success" && el.attrs.xmlns === SASL2)!;
    assert.ok(success.getChild("bound", BIND2), "the token login bound a resource inline");
    assert.equal(second.sent.find((el) => el.name === "authenticate")!.attrs.mechanism, "HT-SHA-256-NONE");
    await second.xmpp.stop();

    // Another user agent cannot use it.
    assert.equal((await rawTokenLogin(ts, user, issued.token, "some-other-agent")).name, "failure");
    assert.equal((await rawTokenLogin(ts, user, issued.token, agent)).name, "success");

    await ts.accounts.setPassword("localhost", user, "a-new-password");
    const refused = await rawTokenLogin(ts, user, issued.token, agent);
    assert.equal(refused.name, "failure");
    assert.ok(refused.getChild("not-authorized"));
    assert.deepEqual(await ts.server.context.accounts.login.tokens.list(`${user}@localhost`), []);
  });
});
