// FAST (XEP-0484) tokens bound to the TLS channel: HT-SHA-256-EXPR (tls-exporter, RFC 9266) and
// HT-SHA-256-ENDP (tls-server-end-point, RFC 5929), over real TLS connections to the direct TLS listener.
import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient } from "./helpers/raw-client.js";
import { ScramClient } from "./helpers/scram-client.js";
import { FAST, SASL2 } from "./helpers/sasl2-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { fastTokenKey } from "../src/auth/tokens.js";

const PASSWORD = "queen-mab";
const AGENT = "5b1c2f4e-7d3a-4c8b-9e1f-000000000484";
const exporter = (c: RawClient) => c.tlsSocket!.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));
// The test certificate is signed with SHA-256 (RFC 5929 §4.1).
const endPoint = (c: RawClient) => createHash("sha256").update(c.tlsSocket!.getPeerCertificate().raw).digest();
const proof = (token: string, label: string, cb: Buffer) => createHmac("sha256", Buffer.from(token, "utf8")).update(Buffer.concat([Buffer.from(label), cb])).digest();
const isSasl2 = (el: Element) => el.attrs.xmlns === SASL2;

describe("XEP-0484 FAST tokens bound to the TLS channel (HT-SHA-256-EXPR, HT-SHA-256-ENDP)", function () {
  this.timeout(30000);
  let ts: TestServer;
  let n = 0;
  let user: string;
  const open: RawClient[] = [];
  const connect = async (tls = true) => { const c = await RawClient.connect(ts, { tls }); open.push(c); return c; };
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());
  beforeEach(async () => { user = `mab${++n}`; await ts.accounts.create("localhost", user, PASSWORD); });
  afterEach(() => { for (const c of open.splice(0)) c.close(); });

  /** A SASL2 SCRAM login that asks for a token of `mechanism`; the token. */
  async function passwordLogin(mechanism: string): Promise<string> {
    const c = await connect();
    await c.open();
    const scram = new ScramClient("SHA-256", user, PASSWORD);
    c.send(xml("authenticate", { xmlns: SASL2, mechanism: "SCRAM-SHA-256" },
      xml("initial-response", null, Buffer.from(scram.first()).toString("base64")),
      xml("user-agent", { id: AGENT }), xml("request-token", { xmlns: FAST, mechanism })));
    const challenge = await c.receive(isSasl2);
    c.send(xml("response", { xmlns: SASL2 }, Buffer.from(scram.final(Buffer.from(challenge.getText(), "base64").toString())).toString("base64")));
    const success = await c.receive(isSasl2);
    assert.equal(success.name, "success", success.toString());
    const token = success.getChild("token", FAST)!;
    assert.ok(token, success.toString());
    c.close();
    return token.attrs.token;
  }

  /** A token login on `c` with the initiator computed over `cb`; the answer. */
  async function tokenLogin(c: RawClient, mechanism: string, token: string, cb: Buffer): Promise<Element> {
    const initial = Buffer.concat([Buffer.from(`${user}\0`), proof(token, "Initiator", cb)]).toString("base64");
    c.send(xml("authenticate", { xmlns: SASL2, mechanism }, xml("initial-response", null, initial), xml("user-agent", { id: AGENT }), xml("fast", { xmlns: FAST })));
    return c.receive(isSasl2);
  }

  it("offers the bound mechanisms on TLS only", async () => {
    const tls = await connect();
    const mechs = (await tls.open()).getChild("authentication", SASL2)!.getChild("inline")!.getChild("fast", FAST)!.getChildren("mechanism").map((m) => m.getText());
    assert.deepEqual(mechs, ["HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"]);
    const plain = await connect(false);
    const plainMechs = (await plain.open()).getChild("authentication", SASL2)!.getChild("inline")!.getChild("fast", FAST)!.getChildren("mechanism").map((m) => m.getText());
    assert.deepEqual(plainMechs, ["HT-SHA-256-NONE"]);
    // A bound mechanism without a channel to bind to is refused.
    const answer = await tokenLogin(plain, "HT-SHA-256-EXPR", "x", Buffer.alloc(0));
    assert.ok(answer.getChild("invalid-mechanism"), answer.toString());
  });

  it("HT-SHA-256-EXPR: logs in over this connection's tls-exporter data, with the server's proof over it; another connection's data is refused", async () => {
    const token = await passwordLogin("HT-SHA-256-EXPR");
    // Nothing in the store logs in: the record holds an id, not the token or a proof of it.
    const record = JSON.stringify(await ts.server.context.accounts.login.tokens.get(`${user}@localhost`, fastTokenKey(AGENT)));
    assert.ok(!record.includes(token));

    const c = await connect();
    await c.open();
    const cb = exporter(c);
    const success = await tokenLogin(c, "HT-SHA-256-EXPR", token, cb);
    assert.equal(success.name, "success", success.toString());
    assert.deepEqual(Buffer.from(success.getChildText("additional-data")!, "base64"), proof(token, "Responder", cb));
    assert.equal(success.getChildText("authorization-identifier"), `${user}@localhost`);

    // A man in the middle relays the proof made for its own TLS connection to the server: refused.
    const victim = await connect();
    await victim.open();
    const mitm = await connect();
    await mitm.open();
    const relayed = await tokenLogin(victim, "HT-SHA-256-EXPR", token, exporter(mitm));
    assert.equal(relayed.name, "failure");
    assert.ok(relayed.getChild("not-authorized"), relayed.toString());
    // The bound token is no -NONE token either.
    const unbound = await connect();
    await unbound.open();
    assert.ok((await tokenLogin(unbound, "HT-SHA-256-NONE", token, Buffer.alloc(0))).getChild("not-authorized"));
  });

  it("HT-SHA-256-ENDP: logs in over the server certificate's hash; random binding data is refused", async () => {
    const token = await passwordLogin("HT-SHA-256-ENDP");
    const c = await connect();
    await c.open();
    const success = await tokenLogin(c, "HT-SHA-256-ENDP", token, endPoint(c));
    assert.equal(success.name, "success", success.toString());
    assert.deepEqual(Buffer.from(success.getChildText("additional-data")!, "base64"), proof(token, "Responder", endPoint(c)));
    const forged = await connect();
    await forged.open();
    assert.ok((await tokenLogin(forged, "HT-SHA-256-ENDP", token, randomBytes(32))).getChild("not-authorized"));
    // And a token of one binding type does not log in with the other.
    const other = await connect();
    await other.open();
    assert.ok((await tokenLogin(other, "HT-SHA-256-EXPR", token, exporter(other))).getChild("not-authorized"));
  });

  it("a bound token is revoked by a password change", async () => {
    const token = await passwordLogin("HT-SHA-256-EXPR");
    await ts.accounts.setPassword("localhost", user, "a-new-password");
    const c = await connect();
    await c.open();
    assert.ok((await tokenLogin(c, "HT-SHA-256-EXPR", token, exporter(c))).getChild("not-authorized"));
  });
});
