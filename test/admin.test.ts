// Administration: the XEP-0133 commands over XEP-0050 from a real client stream, and disabled accounts,
// which no login path lets in (SCRAM over SASL, SASL2 FAST tokens, mobile passwords and device tokens).
import assert from "node:assert/strict";
import { xml, type Element } from "../src/xml/element.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { ErrorCode, MobileClient, MobileRequestError, Platform, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";
import { jsClient, rawTokenLogin, type Token } from "./helpers/sasl2-client.js";
import { createLogger } from "../src/log.js";
import { KickReason } from "../src/mobile/schema.js";
import { RecentErrors } from "../src/admin/service.js";
import { ConfigError, loadConfig } from "../src/config/config.js";

const COMMANDS = "http://jabber.org/protocol/commands";
const ADMIN = "http://jabber.org/protocol/admin";
const DATA = "jabber:x:data";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

function command(node: string, attrs: Record<string, string> = {}, ...children: Element[]): Element {
  return xml("iq", { type: "set", to: "localhost" }, xml("command", { xmlns: COMMANDS, node: `${ADMIN}#${node}`, ...attrs }, ...children));
}

function submit(fields: Record<string, string | string[]>): Element {
  return xml("x", { xmlns: DATA, type: "submit" },
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", null, ADMIN)),
    ...Object.entries(fields).map(([k, v]) => xml("field", { var: k }, ...(Array.isArray(v) ? v : [v]).map((x) => xml("value", null, x)))));
}

/** Runs a two-step command: execute (a form comes back), then the submitted form; returns the final <command/>. */
async function run(c: RawClient, node: string, fields: Record<string, string | string[]>): Promise<Element> {
  const first = await c.iq(command(node));
  assert.equal(first.attrs.type, "result", first.toString());
  const form = first.getChild("command", COMMANDS)!;
  assert.equal(form.attrs.status, "executing");
  assert.equal(form.getChild("x", DATA)?.attrs.type, "form");
  const done = await c.iq(command(node, { sessionid: form.attrs.sessionid!, action: "complete" }, submit(fields)));
  assert.equal(done.attrs.type, "result", done.toString());
  const result = done.getChild("command", COMMANDS)!;
  assert.equal(result.attrs.status, "completed");
  return result;
}

const field = (cmd: Element, name: string): string[] =>
  cmd.getChild("x", DATA)!.getChildren("field").find((f) => f.attrs.var === name)!.getChildren("value").map((v) => v.getText());

async function saslRefusal(ts: MobileTestServer, user: string, password: string): Promise<string> {
  const c = await RawClient.connect(ts);
  try {
    await c.open();
    try {
      await c.authenticate(user, password);
      return "success";
    } catch (err) {
      const el = (err as { element?: Element }).element;
      if (!el) throw err;
      return el.children.find((x): x is Element => typeof x !== "string" && x.name !== "text")!.name;
    }
  } finally {
    c.close();
  }
}

describe("XEP-0133 service administration over XEP-0050 ad-hoc commands", function () {
  this.timeout(30000);
  let ts: MobileTestServer;
  let root: RawClient;
  before(async () => {
    ts = await startMobileServer({}, { admin: { accounts: ["root@localhost"], sampleSeconds: 1 } });
    root = await onlineUser(ts, "root");
  });
  after(async () => { root?.close(); await ts?.stop(); });

  it("lists the commands to an admin on the commands node, with disco#info per command", async () => {
    const info = await root.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
    assert.ok(info.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === COMMANDS), "the server announces XEP-0050");
    const items = await root.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#items", node: COMMANDS })));
    const nodes = items.getChild("query")!.getChildren("item").map((i) => i.attrs.node);
    for (const name of ["add-user", "delete-user", "disable-user", "reenable-user", "change-user-password", "end-user-session", "announce", "get-online-users-num", "get-online-users-list"]) {
      assert.ok(nodes.includes(`${ADMIN}#${name}`), `${name} is listed`);
    }
    const cmdInfo = await root.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info", node: `${ADMIN}#add-user` })));
    const identity = cmdInfo.getChild("query")!.getChild("identity")!;
    assert.deepEqual([identity.attrs.category, identity.attrs.type], ["automation", "command-node"]);
  });

  it("refuses a non-admin with forbidden and lists nothing to it", async () => {
    const mallory = await onlineUser(ts, fresh("mallory"));
    try {
      const res = await mallory.iq(command("add-user"));
      assert.equal(res.attrs.type, "error");
      assert.equal(errorCondition(res), "forbidden");
      const items = await mallory.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#items", node: COMMANDS })));
      assert.equal(items.getChild("query")?.getChildren("item").length ?? 0, 0);
    } finally {
      mallory.close();
    }
  });

  it("adds a user who can then log in, and changes its password", async () => {
    const user = fresh("juliet");
    const done = await run(root, "add-user", { accountjid: `${user}@localhost`, password: "first-secret", "password-verify": "first-secret" });
    assert.match(done.getChildText("note") ?? "", /created/);
    assert.equal(await saslRefusal(ts, user, "first-secret"), "success");
    await run(root, "change-user-password", { accountjid: `${user}@localhost`, password: "second-secret" });
    assert.equal(await saslRefusal(ts, user, "first-secret"), "not-authorized");
    assert.equal(await saslRefusal(ts, user, "second-secret"), "success");
    // A wrong session id is XEP-0050's bad-sessionid.
    const bad = await root.iq(command("add-user", { sessionid: "nope", action: "complete" }, submit({})));
    assert.equal(errorCondition(bad), "bad-request");
    assert.ok(bad.getChild("error")!.getChild("bad-sessionid", COMMANDS));
  });

  it("ends a user's session with a policy-violation stream error", async () => {
    const bob = await onlineUser(ts, fresh("bob"));
    await run(root, "end-user-session", { accountjids: bob.jid });
    const err = await bob.closed();
    assert.equal(errorCondition(err), "policy-violation");
  });

  it("counts and lists online users, and announces to them from the server domain", async () => {
    const carol = await onlineUser(ts, fresh("carol"));
    try {
      const num = await root.iq(command("get-online-users-num"));
      const cmd = num.getChild("command", COMMANDS)!;
      assert.equal(cmd.attrs.status, "completed");
      assert.ok(Number(field(cmd, "onlineusersnum")[0]) >= 2);
      const list = await run(root, "get-online-users-list", { max_items: "none" });
      assert.ok(field(list, "onlineuserjids").includes(carol.jid.split("/")[0]!));
      await run(root, "announce", { subject: "Maintenance", announcement: "The server restarts at noon." });
      const msg = await carol.receive((el) => el.name === "message" && el.attrs.from === "localhost");
      assert.equal(msg.attrs.type, "headline");
      assert.equal(msg.getChildText("body"), "The server restarts at noon.");
      assert.equal(msg.getChildText("subject"), "Maintenance");
    } finally {
      carol.close();
    }
  });

  it("disables an account: its sessions end and no login path lets it in until it is re-enabled; a reset revokes its tokens", async () => {
    const user = fresh("romeo");
    const agent = "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0aa1";
    await ts.accounts.create("localhost", user, "password");
    // A FAST token and a mobile device token, both issued while the account was enabled.
    const saved: { token?: Token } = {};
    const js = jsClient(ts, user, "password", agent);
    js.xmpp.fast.saveToken = async (t: Token) => { saved.token = t; };
    await js.xmpp.start();
    await js.xmpp.stop();
    const token = saved.token;
    assert.ok(token);
    const phone = await MobileClient.connect(ts.mobileUrl);
    await phone.login({ username: user, password: "password", deviceId: "dev-admin", platform: Platform.ANDROID });
    const device = await phone.request("issueToken", { ttlSeconds: 3600 });
    const online = await onlineUser(ts, user);

    await run(root, "disable-user", { accountjids: `${user}@localhost` });
    assert.equal(errorCondition(await online.closed()), "policy-violation", "the live session was ended");
    assert.equal((await phone.nextPush("kicked")).reason, KickReason.POLICY_VIOLATION, "the live mobile session too");
    const disabled = await run(root, "get-disabled-users-list", { max_items: "none" });
    assert.ok(field(disabled, "disableduserjids").includes(`${user}@localhost`));
    phone.close();
    assert.equal(await saslRefusal(ts, user, "password"), "account-disabled", "SASL refuses the right password");
    assert.equal(await saslRefusal(ts, user, "wrong"), "not-authorized", "a wrong password learns nothing");
    const fast = await rawTokenLogin(ts, user, token.token, agent);
    assert.equal(fast.name, "failure");
    assert.ok(fast.getChild("account-disabled"), `the FAST token is refused: ${fast.toString()}`);
    for (const attempt of [{ password: "password" }, { token: device.token }]) {
      const m = await MobileClient.connect(ts.mobileUrl);
      try {
        await assert.rejects(m.login({ username: user, deviceId: "dev-admin", platform: Platform.ANDROID, ...attempt }),
          (err: unknown) => err instanceof MobileRequestError && err.code === ErrorCode.AUTH_FAILED && /disabled/.test(err.message));
      } finally {
        m.close();
      }
    }

    await run(root, "reenable-user", { accountjids: `${user}@localhost` });
    assert.equal(await saslRefusal(ts, user, "password"), "success");
    assert.equal((await rawTokenLogin(ts, user, token.token, agent)).name, "success", "tokens survive a disable");
    // A password reset revokes the account's tokens, like any password change (XEP-0484 §6).
    await run(root, "change-user-password", { accountjid: `${user}@localhost`, password: "a-new-password" });
    assert.equal((await rawTokenLogin(ts, user, token.token, agent)).name, "failure", "the FAST token is revoked");
    assert.deepEqual(await ts.server.context.accounts.login.tokens.list(`${user}@localhost`), [], "the device token too");
  });

  it("applies a disable written straight to the store (CLI without a server, another node) to live sessions", async () => {
    const user = fresh("tybalt");
    const online = await onlineUser(ts, user);
    await ts.server.context.accounts.login.setDisabled("localhost", user, true);
    assert.equal(errorCondition(await online.closed(5000)), "policy-violation");
  });
});

describe("admin: configuration and recent errors", () => {
  it("refuses an admin account on a host the server does not serve", () => {
    assert.throws(() => loadConfig({ file: null, env: {}, overrides: { hosts: ["example.org"], admin: { accounts: ["root@example.com"] } } }),
      (err: unknown) => err instanceof ConfigError && /admin\.accounts: root@example\.com is not on a served host/.test(err.message));
  });

  it("keeps warnings and errors from the log, not info lines or refused logins (those come from the login service)", () => {
    const recent = new RecentErrors();
    const log = createLogger({ level: "info", format: "json", stanzas: false }, { write() {} }, (line) => recent.fromLogLine(line));
    log.info("ordinary");
    log.warn({ peer: "192.0.2.1" }, "a connection limit was hit");
    log.warn({ peer: "192.0.2.1" }, "login refused: too many failed attempts");
    log.error({ err: new Error("disk full") }, "archiving failed");
    const seen = recent.toArray().map((e) => `${e.level}: ${e.message}`);
    assert.deepEqual(seen, ["warn: a connection limit was hit peer 192.0.2.1", "error: archiving failed (disk full)"]);
    // The same from a human-readable log (log.format: pretty): the tap reads the JSON before it is reformatted.
    const fromPretty = new RecentErrors();
    const lines: string[] = [];
    createLogger({ level: "info", format: "pretty", stanzas: false }, { write(l: string) { lines.push(l); } }, (line) => fromPretty.fromLogLine(line)).error("store unreachable");
    assert.match(lines.join(""), /ERROR store unreachable/);
    assert.deepEqual(fromPretty.toArray().map((e) => e.message), ["store unreachable"]);
  });
});
