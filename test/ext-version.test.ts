// XEP-0092 Software Version of the server.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml } from "../src/xml/element.js";

const VERSION = "jabber:iq:version";
const query = (to = "localhost") => xml("iq", { type: "get", to }, xml("query", { xmlns: VERSION }));
const packageVersion = (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;

describe("XEP-0092 software version", function () {
  let ts: TestServer;
  let alice: RawClient;
  before(async () => {
    ts = await startTestServer();
    alice = await onlineUser(ts, "alice");
  });
  after(async () => {
    alice.close();
    await ts.stop();
  });

  it("names the software and the version of package.json, without the OS by default (§5)", async () => {
    const res = await alice.iq(query());
    assert.equal(res.attrs.type, "result");
    const q = res.getChild("query", VERSION)!;
    assert.equal(q.getChildText("name"), "hearth");
    assert.equal(q.getChildText("version"), packageVersion);
    assert.equal(q.getChild("os"), undefined);
  });

  it("is advertised in disco#info", async () => {
    const res = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(res.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === VERSION));
  });

  it("is not answered for users: a query to a bare JID is not the server's", async () => {
    assert.equal(errorCondition(await alice.iq(query("alice@localhost"))), "service-unavailable");
  });

  it("includes the OS when the option showOs is set", async () => {
    const other = await startTestServer({ modules: { version: { showOs: true } } });
    try {
      const c = await onlineUser(other, "bob");
      const os = (await c.iq(query())).getChild("query", VERSION)!.getChildText("os");
      assert.ok(os && os.length > 0);
      c.close();
    } finally {
      await other.stop();
    }
  });

  it("refuses an invalid option at start", async () => {
    await assert.rejects(startTestServer({ modules: { version: { showOs: "yes" } } }), /^ConfigError: modules\.version\.showOs: must be true or false, got "yes"$/);
  });
});
