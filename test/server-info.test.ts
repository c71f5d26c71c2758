// What the server tells every client about itself: XEP-0157 contact addresses in its disco#info and
// XEP-0478 stream limits in the stream features.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";

const INFO = "http://jabber.org/protocol/disco#info";
const LIMITS = "urn:xmpp:stream-limits:0";

const serverinfo = (res: Element) => res.getChild("query", INFO)!.getChildren("x", "jabber:x:data")
  .find((x) => x.getChildren("field").some((f) => f.attrs.var === "FORM_TYPE" && f.getChildText("value") === "http://jabber.org/network/serverinfo"));
const values = (form: Element, v: string) => form.getChildren("field").find((f) => f.attrs.var === v)?.getChildren("value").map((x) => x.getText());

describe("XEP-0157 contact addresses and XEP-0478 stream limits", function () {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer({
      limits: { maxStanzaBytes: 300_000, idleTimeoutSeconds: 240 },
      modules: { disco: { contactAddresses: { abuse: ["mailto:abuse@localhost", "xmpp:abuse@localhost"], security: ["https://localhost/security"] } } },
    });
  });
  after(() => ts.stop());

  it("publishes the configured addresses in the server's disco#info form, and only those kinds", async () => {
    const alice = await onlineUser(ts, "alice");
    const form = serverinfo(await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: INFO }))))!;
    assert.ok(form, "the serverinfo form is there");
    assert.equal(form.attrs.type, "result");
    assert.deepEqual(values(form, "abuse-addresses"), ["mailto:abuse@localhost", "xmpp:abuse@localhost"]);
    assert.deepEqual(values(form, "security-addresses"), ["https://localhost/security"]);
    assert.equal(values(form, "admin-addresses"), undefined);
    // Accounts are not the server: no form on a user's disco#info.
    assert.equal(serverinfo(await alice.iq(xml("iq", { type: "get", to: "alice@localhost" }, xml("query", { xmlns: INFO })))), undefined);
    alice.close();
  });

  it("advertises max-bytes before and after authentication, idle-seconds after", async () => {
    const c = await RawClient.connect(ts);
    const before = (await c.open()).getChild("limits", LIMITS)!;
    assert.equal(before.getChildText("max-bytes"), "300000");
    await ts.accounts.create(ts.host, "bob", "password");
    await c.authenticate("bob", "password");
    const after = (await c.open()).getChild("limits", LIMITS)!;
    assert.equal(after.getChildText("max-bytes"), "300000");
    assert.equal(after.getChildText("idle-seconds"), "240");
    c.close();
  });
});

describe("XEP-0157 without configured addresses", function () {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  it("adds no serverinfo form", async () => {
    const alice = await onlineUser(ts, "alice");
    assert.equal(serverinfo(await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: INFO })))), undefined);
    alice.close();
  });
});
