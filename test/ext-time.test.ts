// XEP-0202 Entity Time of the server.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, onlineUser } from "./helpers/raw-client.js";
import { xml } from "../src/xml/element.js";
import { timezoneOffset, utcDateTime } from "../extensions/time/index.js";

const TIME = "urn:xmpp:time";

describe("XEP-0202 entity time", function () {
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

  it("answers <tzo/> and <utc/> in XEP-0082 formats (§2)", async () => {
    const before = Date.now();
    const res = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("time", { xmlns: TIME })));
    assert.equal(res.attrs.type, "result");
    const t = res.getChild("time", TIME)!;
    assert.match(t.getChildText("tzo")!, /^[+-]\d{2}:\d{2}$/);
    const utc = t.getChildText("utc")!;
    assert.match(utc, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
    assert.ok(Math.abs(Date.parse(utc) - before) < 5000);
  });

  it("is advertised in disco#info", async () => {
    const res = await alice.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(res.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === TIME));
  });

  it("formats offsets east and west of UTC, and UTC itself", () => {
    const at = (offsetMinutes: number) => ({ getTimezoneOffset: () => offsetMinutes }) as Date;
    assert.equal(timezoneOffset(at(-330)), "+05:30");
    assert.equal(timezoneOffset(at(300)), "-05:00");
    assert.equal(timezoneOffset(at(0)), "+00:00");
    assert.equal(utcDateTime(new Date(Date.UTC(2006, 11, 19, 17, 58, 35, 123))), "2006-12-19T17:58:35Z");
  });
});
