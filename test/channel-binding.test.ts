// SCRAM-*-PLUS (RFC 5802 §6) with tls-exporter (RFC 9266) and tls-server-end-point (RFC 5929), the XEP-0440
// list of binding types, and XEP-0474 downgrade protection, against the direct TLS listener.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient } from "./helpers/raw-client.js";
import { ScramClient, type Binding } from "./helpers/scram-client.js";
import { xml, type Element } from "../src/xml/element.js";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const SASL2 = "urn:xmpp:sasl:2";
const SASL_CB = "urn:xmpp:sasl-cb:0";
const PASSWORD = "balcony-scene";

const exporter = (c: RawClient) => c.tlsSocket!.exportKeyingMaterial(32, "EXPORTER-Channel-Binding", Buffer.alloc(0));
// The test certificate is signed with SHA-256, so RFC 5929 §4.1 hashes it with SHA-256.
const endPoint = (c: RawClient) => createHash("sha256").update(c.tlsSocket!.getPeerCertificate().raw).digest();

interface Offer { mechanisms: string[]; bindingTypes: string[] | null }

function offerOf(features: Element): Offer {
  const mechanisms = features.getChild("mechanisms", NS_SASL)!.getChildren("mechanism").map((m) => m.getText());
  const cb = features.getChild("sasl-channel-binding", SASL_CB);
  return { mechanisms, bindingTypes: cb ? cb.getChildren("channel-binding").map((t) => t.attrs.type) : null };
}

/** One RFC 6120 SCRAM exchange; resolves to the outcome element and the client (for its "h"). */
async function scram(c: RawClient, mechanism: string, user: string, binding?: Binding): Promise<{ outcome: Element; client: ScramClient }> {
  const client = new ScramClient(mechanism.startsWith("SCRAM-SHA-1") ? "SHA-1" : "SHA-256", user, PASSWORD, binding);
  const isSasl = (el: Element) => el.attrs.xmlns === NS_SASL;
  c.send(xml("auth", { xmlns: NS_SASL, mechanism }, Buffer.from(client.first()).toString("base64")));
  const challenge = await c.receive(isSasl);
  if (challenge.name !== "challenge") return { outcome: challenge, client };
  c.send(xml("response", { xmlns: NS_SASL }, Buffer.from(client.final(Buffer.from(challenge.getText(), "base64").toString())).toString("base64")));
  const outcome = await c.receive(isSasl);
  if (outcome.name === "success") assert.ok(client.verify(Buffer.from(outcome.getText(), "base64").toString()), "server signature");
  return { outcome, client };
}

describe("channel binding: SCRAM-*-PLUS, XEP-0440, XEP-0474", function () {
  this.timeout(30000);
  let ts: TestServer;
  let n = 0;
  let user: string;
  const open: RawClient[] = [];
  const tlsClient = async () => { const c = await RawClient.connect(ts, { tls: true }); open.push(c); return c; };
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());
  beforeEach(async () => { user = `nurse${++n}`; await ts.accounts.create("localhost", user, PASSWORD); });
  afterEach(() => { for (const c of open.splice(0)) c.close(); });

  it("offers -PLUS and the binding types on TLS (TLS 1.3: tls-exporter too), and neither on plain TCP", async () => {
    const c = await tlsClient();
    assert.equal(c.tlsSocket!.getProtocol(), "TLSv1.3");
    const offer = offerOf(await c.open());
    assert.deepEqual(offer.mechanisms.slice(0, 2), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]);
    assert.deepEqual(offer.bindingTypes?.sort(), ["tls-exporter", "tls-server-end-point"]);
    const plain = await RawClient.connect(ts);
    open.push(plain);
    const plainOffer = offerOf(await plain.open());
    assert.ok(!plainOffer.mechanisms.some((m) => m.endsWith("-PLUS")));
    assert.equal(plainOffer.bindingTypes, null);
  });

  for (const [mechanism, type] of [["SCRAM-SHA-256-PLUS", "tls-exporter"], ["SCRAM-SHA-1-PLUS", "tls-server-end-point"], ["SCRAM-SHA-256-PLUS", "tls-server-end-point"]] as const) {
    it(`${mechanism} with ${type} succeeds, and the XEP-0474 hash matches what was advertised`, async () => {
      const c = await tlsClient();
      const offer = offerOf(await c.open());
      const data = type === "tls-exporter" ? exporter(c) : endPoint(c);
      const { outcome, client } = await scram(c, mechanism, user, { type, data });
      assert.equal(outcome.name, "success");
      assert.equal(client.downgradeHash, client.expectedDowngradeHash(offer.mechanisms, offer.bindingTypes));
    });
  }

  it("refuses binding data of another TLS connection (a man in the middle) and random data", async () => {
    const victim = await tlsClient();
    await victim.open();
    const other = await tlsClient();
    const { outcome } = await scram(victim, "SCRAM-SHA-256-PLUS", user, { type: "tls-exporter", data: exporter(other) });
    assert.equal(outcome.name, "failure");
    assert.ok(outcome.getChild("not-authorized"));
    const c = await tlsClient();
    await c.open();
    const forged = await scram(c, "SCRAM-SHA-1-PLUS", user, { type: "tls-server-end-point", data: randomBytes(32) });
    assert.ok(forged.outcome.getChild("not-authorized"));
  });

  it("refuses an unknown binding type and p= on a mechanism without -PLUS", async () => {
    const c = await tlsClient();
    await c.open();
    const unknown = await scram(c, "SCRAM-SHA-256-PLUS", user, { type: "tls-nonexistent", data: randomBytes(12) });
    assert.ok(unknown.outcome.getChild("malformed-request"));
    const noPlus = await scram(c, "SCRAM-SHA-256", user, { type: "tls-exporter", data: exporter(c) });
    assert.ok(noPlus.outcome.getChild("malformed-request"));
  });

  it("detects a downgrade: with -PLUS stripped from the features the client's 'y' is refused, and the XEP-0474 hash differs", async () => {
    const c = await tlsClient();
    const real = offerOf(await c.open());
    // What a man in the middle shows the client: no -PLUS, no XEP-0440 list.
    const shown: Offer = { mechanisms: real.mechanisms.filter((m) => !m.endsWith("-PLUS")), bindingTypes: null };
    const { outcome } = await scram(c, "SCRAM-SHA-256", user, "y");
    assert.equal(outcome.name, "failure");
    assert.ok(outcome.getChild("not-authorized"));
    // A client that does not bind at all ("n") still sees the server's hash over the real offer.
    const { outcome: ok, client } = await scram(c, "SCRAM-SHA-256", user);
    assert.equal(ok.name, "success");
    assert.notEqual(client.downgradeHash, client.expectedDowngradeHash(shown.mechanisms, shown.bindingTypes), "the stripped list is detected");
    assert.equal(client.downgradeHash, client.expectedDowngradeHash(real.mechanisms, real.bindingTypes));
  });

  it("binds in a SASL2 login as well", async () => {
    const c = await tlsClient();
    const features = await c.open();
    const mechs = features.getChild("authentication", SASL2)!.getChildren("mechanism").map((m) => m.getText());
    assert.ok(mechs.includes("SCRAM-SHA-256-PLUS"));
    const client = new ScramClient("SHA-256", user, PASSWORD, { type: "tls-exporter", data: exporter(c) });
    c.send(xml("authenticate", { xmlns: SASL2, mechanism: "SCRAM-SHA-256-PLUS" }, xml("initial-response", null, Buffer.from(client.first()).toString("base64"))));
    const challenge = await c.receive((el) => el.attrs.xmlns === SASL2);
    assert.equal(challenge.name, "challenge");
    c.send(xml("response", { xmlns: SASL2 }, Buffer.from(client.final(Buffer.from(challenge.getText(), "base64").toString())).toString("base64")));
    const success = await c.receive((el) => el.attrs.xmlns === SASL2);
    assert.equal(success.name, "success");
    assert.ok(client.verify(Buffer.from(success.getChildText("additional-data")!, "base64").toString()));
  });
});
