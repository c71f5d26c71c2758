// What an operator reads in the log: each refused login, throttle refusal and connection limit once, with
// its peer and reason, and never a password or a message body (log.stanzas is off by default).
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { createLogger } from "../src/log.js";
import { xml } from "../src/xml/element.js";
import { loadConfig } from "../src/config/config.js";
import { gettingStarted } from "../src/cli/main.js";
import { tmpdir } from "node:os";

const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const SECRET = "correct-horse-battery-staple";
const BODY = "meet me at the orchard wall";

describe("operator logs", () => {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  let ts: TestServer;
  before(async () => {
    const log = createLogger({ level: "debug", stanzas: false, format: "json" }, {
      write: (chunk: string) => { for (const l of chunk.split("\n")) if (l) { raw.push(l); lines.push(JSON.parse(l) as Record<string, unknown>); } },
    });
    ts = await startTestServer({ auth: { maxFailuresPerAccount: 2 }, limits: { maxConnectionsPerIp: 3 } }, { log });
    await ts.accounts.create(ts.host, "tybalt", SECRET);
  });
  after(async () => { await ts?.stop(); });

  const withMsg = (msg: string) => lines.filter((l) => l.msg === msg);

  async function plain(c: RawClient, user: string, password: string): Promise<string> {
    if (c.header === null) await c.open();
    c.send(xml("auth", { xmlns: NS_SASL, mechanism: "PLAIN" }, Buffer.from(`\0${user}\0${password}`).toString("base64")));
    return (await c.receive((el) => el.attrs.xmlns === NS_SASL)).name;
  }

  it("logs a wrong password once, with peer, account and mechanism, and no secret", async () => {
    const c = await RawClient.connect(ts);
    assert.equal(await plain(c, "tybalt", "not-" + SECRET), "failure");
    c.close();
    const refused = withMsg("login refused: wrong credentials");
    assert.equal(refused.length, 1);
    assert.equal(refused[0].peer, "127.0.0.1");
    assert.equal(refused[0].account, "tybalt@localhost");
    assert.equal(refused[0].mechanism, "PLAIN");
  });

  it("logs the throttle's refusal with the peer", async () => {
    const c = await RawClient.connect(ts);
    assert.equal(await plain(c, "tybalt", "wrong again"), "failure");
    assert.equal(await plain(c, "tybalt", SECRET), "failure", "the pair is throttled now, whatever the password");
    c.close();
    const throttled = withMsg("login refused: too many failed attempts");
    assert.equal(throttled.length, 1);
    assert.equal(throttled[0].peer, "127.0.0.1");
    assert.equal(throttled[0].account, "tybalt@localhost");
  });

  it("logs a connection over the per-address limit once, as the stream error with its peer", async () => {
    const open = await Promise.all([RawClient.connect(ts), RawClient.connect(ts), RawClient.connect(ts)]);
    const extra = await RawClient.connect(ts);
    const err = await extra.closed();
    assert.equal(errorCondition(err), "policy-violation");
    for (const c of open) c.close();
    const errors = withMsg("stream error").filter((l) => l.error === "policy-violation");
    assert.equal(errors.length, 1);
    assert.equal(errors[0].peer, "127.0.0.1");
    assert.equal(errors[0].text, "too many connections from this address");
  });

  it("never writes a password or a message body (log.stanzas off)", async () => {
    const a = await onlineUser(ts, "benvolio");
    const b = await onlineUser(ts, "rosaline");
    a.send(xml("message", { to: "rosaline@localhost", type: "chat" }, xml("body", null, BODY)));
    await b.receive((el) => el.name === "message" && el.getChildText("body") === BODY);
    a.close();
    b.close();
    const all = raw.join("\n");
    assert.ok(raw.length > 3, "the server logged");
    assert.ok(!all.includes(SECRET), "no password");
    assert.ok(!all.includes(Buffer.from(`\0tybalt\0${SECRET}`).toString("base64")), "no SASL payload");
    assert.ok(!all.includes(BODY), "no message body");
  });
});

describe("the start banner", () => {
  it("tells a newcomer how to add a user and where to point a client", () => {
    const config = loadConfig({ file: null, env: {}, overrides: {}, cwd: tmpdir() });
    const text = gettingStarted(config, { c2s: 5222, http: 5280 });
    assert.match(text, /npx hearth adduser alice@localhost/);
    assert.match(text, /log in as alice@localhost; server 127\.0\.0\.1, port 5222/);
    assert.match(text, /ws:\/\/localhost:5280\/xmpp-websocket/);
    assert.match(text, /self-signed/);
  });
});
