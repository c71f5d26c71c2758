// XEP-0077 in-band registration: before authentication, and password change and removal after it.
import assert from "node:assert/strict";
import { client } from "@xmpp/client";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { isLoopback, policyAllows, RegistrationLimiter } from "../extensions/register/policy.js";

const REGISTER = "jabber:iq:register";
const FEATURE = "http://jabber.org/features/iq-register";

const fields = (to?: string) => xml("iq", { type: "get", to }, xml("query", { xmlns: REGISTER }));
const submit = (username: string | null, password: string | null, to: string | undefined = "localhost") =>
  xml("iq", { type: "set", to }, xml("query", { xmlns: REGISTER },
    username !== null ? xml("username", null, username) : null,
    password !== null ? xml("password", null, password) : null));
const remove = (...extra: Element[]) => xml("iq", { type: "set" }, xml("query", { xmlns: REGISTER }, xml("remove"), ...extra));
const errorText = (el: Element) => el.getChild("error")?.getChildText("text") ?? "";

/** A fresh connection with its stream open, not authenticated. */
async function anonymous(ts: TestServer, localAddress?: string): Promise<RawClient> {
  const c = await RawClient.connect(ts, { localAddress });
  await c.open();
  return c;
}

async function canLogin(ts: TestServer, username: string, password: string): Promise<boolean> {
  const c = await RawClient.connect(ts);
  try {
    await c.login(username, password);
    return true;
  } catch {
    return false;
  } finally {
    c.close();
  }
}

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

describe("XEP-0077 in-band registration", function () {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer({ registration: { minPasswordLength: 8 }, modules: { register: { perIpPerHour: 0 } } });
  });
  after(() => ts.stop());

  describe("before authentication", () => {
    it("advertises the stream feature (§8) and returns the fields to fill (§3.1)", async () => {
      const c = await RawClient.connect(ts);
      const features = await c.open();
      assert.ok(features.getChild("register", FEATURE));
      const res = await c.iq(fields("localhost"));
      assert.equal(res.attrs.type, "result");
      const q = res.getChild("query", REGISTER)!;
      assert.ok(q.getChildText("instructions"));
      assert.ok(q.getChild("username"));
      assert.ok(q.getChild("password"));
      assert.equal(q.getChild("registered"), undefined);
      assert.equal((await c.iq(fields())).attrs.type, "result", "a request without 'to' is for the server too");
      c.close();
    });

    it("creates the account (§3.1), which can then log in", async () => {
      const user = fresh("romeo");
      const c = await anonymous(ts);
      const res = await c.iq(submit(user, "wherefore-art"));
      assert.equal(res.attrs.type, "result");
      assert.ok(await ts.accounts.exists(ts.host, user));
      await c.authenticate(user, "wherefore-art");
      await c.open();
      assert.equal(await c.bind("garden"), `${user}@localhost/garden`);
      c.close();
    });

    it("prepares the username: Romeo registers romeo", async () => {
      const user = fresh("Capulet");
      const c = await anonymous(ts);
      assert.equal((await c.iq(submit(user, "long-enough"))).attrs.type, "result");
      assert.ok(await ts.accounts.exists(ts.host, user.toLowerCase()));
      c.close();
    });

    it("answers conflict for a username in use (§3.1)", async () => {
      const user = fresh("juliet");
      await ts.accounts.create(ts.host, user, "first-password");
      const c = await anonymous(ts);
      const res = await c.iq(submit(user, "second-password"));
      assert.equal(errorCondition(res), "conflict");
      assert.equal(res.getChild("error")!.attrs.type, "cancel");
      assert.ok(await canLogin(ts, user, "first-password"), "the existing account is untouched");
      c.close();
    });

    it("answers not-acceptable when the username or the password is missing or empty (§3.1)", async () => {
      const c = await anonymous(ts);
      for (const req of [submit(null, "long-enough"), submit(fresh("x"), null), submit("", "long-enough"), submit(fresh("x"), "")]) {
        const res = await c.iq(req);
        assert.equal(errorCondition(res), "not-acceptable", req.toString());
        assert.equal(res.getChild("error")!.attrs.type, "modify");
      }
      c.close();
    });

    it("answers jid-malformed for a username that is not a valid localpart", async () => {
      const c = await anonymous(ts);
      for (const bad of ["a@b", "with space", "slash/ed", "x".repeat(1100)]) {
        assert.equal(errorCondition(await c.iq(submit(bad, "long-enough"))), "jid-malformed", bad.slice(0, 20));
      }
      c.close();
    });

    it("answers not-acceptable with a reason for a weak password", async () => {
      const c = await anonymous(ts);
      const user = fresh("weak");
      const res = await c.iq(submit(user, "short"));
      assert.equal(errorCondition(res), "not-acceptable");
      assert.match(errorText(res), /at least 8/);
      assert.equal(await ts.accounts.exists(ts.host, user), false);
      c.close();
    });

    it("refuses <remove/> before authentication with unexpected-request (§3.2)", async () => {
      const c = await anonymous(ts);
      c.send(xml("iq", { type: "set", id: "unreg0" }, xml("query", { xmlns: REGISTER }, xml("remove"))));
      const res = await c.receive((el) => el.attrs.id === "unreg0");
      assert.equal(errorCondition(res), "unexpected-request");
      c.close();
    });

    it("answers other pre-authentication iqs with service-unavailable, as the core does", async () => {
      const c = await anonymous(ts);
      const res = await c.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
      assert.equal(errorCondition(res), "service-unavailable");
      c.close();
    });
  });

  describe("authenticated", () => {
    it("tells a registered user so, with the username on file (§3.1)", async () => {
      const user = fresh("reg");
      const c = await onlineUser(ts, user);
      for (const to of ["localhost", undefined]) {
        const res = await c.iq(fields(to));
        assert.equal(res.attrs.type, "result");
        const q = res.getChild("query", REGISTER)!;
        assert.ok(q.getChild("registered"));
        assert.equal(q.getChildText("username"), user);
      }
      c.close();
    });

    it("changes the user's own password (§3.3)", async () => {
      const user = fresh("pw");
      const c = await onlineUser(ts, user, { password: "old-password" });
      const res = await c.iq(submit(user, "new-password"));
      assert.equal(res.attrs.type, "result");
      c.close();
      assert.equal(await canLogin(ts, user, "old-password"), false);
      assert.equal(await canLogin(ts, user, "new-password"), true);
    });

    it("changes the password when the request has no 'to' and no username", async () => {
      const user = fresh("pw");
      const c = await onlineUser(ts, user, { password: "old-password" });
      assert.equal((await c.iq(submit(null, "newer-password", undefined))).attrs.type, "result");
      c.close();
      assert.equal(await canLogin(ts, user, "newer-password"), true);
    });

    it("keeps the password when the new one is empty: bad-request (§3.3)", async () => {
      const user = fresh("pw");
      const c = await onlineUser(ts, user, { password: "old-password" });
      assert.equal(errorCondition(await c.iq(submit(user, ""))), "bad-request");
      assert.equal(errorCondition(await c.iq(submit(user, null))), "bad-request");
      c.close();
      assert.equal(await canLogin(ts, user, "old-password"), true);
    });

    it("refuses a weak new password with not-acceptable", async () => {
      const user = fresh("pw");
      const c = await onlineUser(ts, user, { password: "old-password" });
      const res = await c.iq(submit(user, "short"));
      assert.equal(errorCondition(res), "not-acceptable");
      assert.match(errorText(res), /at least 8/);
      c.close();
    });

    it("refuses to change another user's password: forbidden", async () => {
      const victim = fresh("victim");
      await ts.accounts.create(ts.host, victim, "victim-password");
      const c = await onlineUser(ts, fresh("mallory"));
      assert.equal(errorCondition(await c.iq(submit(victim, "owned-password"))), "forbidden");
      assert.equal(errorCondition(await c.iq(submit("not a user", "owned-password"))), "jid-malformed");
      c.close();
      assert.equal(await canLogin(ts, victim, "victim-password"), true);
    });

    it("removes the account: result first, then every session ends with <not-authorized/> (§3.2)", async () => {
      const user = fresh("bye");
      const a = await onlineUser(ts, user, { resource: "a" });
      const b = await onlineUser(ts, user, { resource: "b" });
      a.send(xml("iq", { type: "set", id: "unreg1" }, xml("query", { xmlns: REGISTER }, xml("remove"))));
      const res = await a.receive((el) => el.attrs.id === "unreg1");
      assert.equal(res.attrs.type, "result");
      assert.equal(errorCondition(await a.closed()), "not-authorized");
      assert.equal(errorCondition(await b.closed()), "not-authorized");
      assert.equal(await ts.accounts.exists(ts.host, user), false);
      assert.equal(await canLogin(ts, user, "password"), false);
    });

    it("refuses <remove/> with other children: bad-request (§3.2)", async () => {
      const user = fresh("stay");
      const c = await onlineUser(ts, user);
      assert.equal(errorCondition(await c.iq(remove(xml("username", null, user)))), "bad-request");
      c.close();
      assert.ok(await ts.accounts.exists(ts.host, user));
    });

    it("is advertised in disco#info", async () => {
      const c = await onlineUser(ts, fresh("disco"));
      const res = await c.iq(xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "http://jabber.org/protocol/disco#info" })));
      assert.ok(res.getChild("query")!.getChildren("feature").some((f) => f.attrs.var === REGISTER));
      c.close();
    });
  });

  describe("@xmpp/client", () => {
    it("logs in to an account registered in-band, then pings, asks the version and the time", async () => {
      const user = fresh("xmppjs");
      const reg = await anonymous(ts);
      assert.equal((await reg.iq(submit(user, "xmpp.js-password"))).attrs.type, "result");
      reg.close();

      const xmpp = client({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username: user, password: "xmpp.js-password", resource: "js" });
      // COMPAT: @xmpp/client always upgrades when STARTTLS is offered and verifies the certificate; the
      // test server's is self-signed and TLS is optional here, so the client is shown no STARTTLS.
      xmpp.prependListener("element", (el: Element) => {
        if (el.name === "stream:features") el.remove("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
      });
      xmpp.on("error", () => {});
      try {
        const address = await xmpp.start();
        // XEP-0386 §2.3: with Bind2 (xmpp.js uses it when offered) the server picks the resource, the tag first.
        assert.match(address.toString(), new RegExp(`^${user}@localhost/js\\.[0-9a-f]+$`));
        const pong = await xmpp.iqCaller.request(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
        assert.equal(pong.attrs.type, "result");
        const version = await xmpp.iqCaller.get(xml("query", { xmlns: "jabber:iq:version" }), "localhost");
        assert.equal(version.getChildText("name"), "hearth");
        const time = await xmpp.iqCaller.get(xml("time", { xmlns: "urn:xmpp:time" }), "localhost");
        assert.match(time.getChildText("utc")!, /Z$/);
        const registered = await xmpp.iqCaller.get(xml("query", { xmlns: REGISTER }));
        assert.ok(registered.getChild("registered"));
      } finally {
        await xmpp.stop();
      }
    });
  });
});

describe("XEP-0077 registration policy and rate limit", function () {
  it("closed: no stream feature, and service-unavailable for fields and submissions (§3.1)", async () => {
    const ts = await startTestServer({ registration: { policy: "closed" } });
    try {
      const c = await RawClient.connect(ts);
      const features = await c.open();
      assert.equal(features.getChild("register", FEATURE), undefined);
      assert.equal(errorCondition(await c.iq(fields("localhost"))), "service-unavailable");
      assert.equal(errorCondition(await c.iq(submit("nobody", "long-enough"))), "service-unavailable");
      assert.equal(await ts.accounts.exists(ts.host, "nobody"), false);
      c.close();
      // Authenticated users can still see their registration and change their password.
      const u = await onlineUser(ts, "existing", { password: "old-password" });
      assert.ok((await u.iq(fields())).getChild("query", REGISTER)!.getChild("registered"));
      assert.equal((await u.iq(submit("existing", "new-password"))).attrs.type, "result");
      u.close();
    } finally {
      await ts.stop();
    }
  });

  it("localhost: open to clients on the loopback interface", async () => {
    const ts = await startTestServer({ registration: { policy: "localhost" } });
    try {
      const c = await RawClient.connect(ts);
      assert.ok((await c.open()).getChild("register", FEATURE));
      assert.equal((await c.iq(submit("local", "long-enough"))).attrs.type, "result");
      c.close();
    } finally {
      await ts.stop();
    }
  });

  it("localhost: knows loopback addresses in every form", () => {
    for (const a of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "::FFFF:127.1.2.3"]) assert.ok(isLoopback(a), a);
    for (const a of ["10.0.0.1", "128.0.0.1", "::2", "::ffff:10.0.0.1", "fe80::1", "1270.0.0.1"]) assert.ok(!isLoopback(a), a);
    assert.ok(policyAllows("open", "203.0.113.9"));
    assert.ok(!policyAllows("localhost", "203.0.113.9"));
    assert.ok(policyAllows("localhost", "::1"));
    assert.ok(!policyAllows("closed", "127.0.0.1"));
  });

  it("limits registrations per address (option perIpPerHour): resource-constraint once over", async () => {
    // Loopback is exempt by default (auth.exemptNetworks): these clients must count.
    const ts = await startTestServer({ auth: { exemptNetworks: [] }, modules: { register: { perIpPerHour: 2 } } });
    try {
      const c = await anonymous(ts);
      assert.equal((await c.iq(submit("first", "long-enough"))).attrs.type, "result");
      // Failed attempts do not count.
      assert.equal(errorCondition(await c.iq(submit("first", "long-enough"))), "conflict");
      const other = await anonymous(ts);
      assert.equal((await other.iq(submit("second", "long-enough"))).attrs.type, "result");
      const third = await other.iq(submit("third", "long-enough"));
      assert.equal(errorCondition(third), "resource-constraint");
      assert.equal(third.getChild("error")!.attrs.type, "wait");
      assert.equal(await ts.accounts.exists(ts.host, "third"), false);
      c.close();
      other.close();
    } finally {
      await ts.stop();
    }
  });

  it("does not limit loopback by default, nor configured networks (auth.exemptNetworks)", async () => {
    const byDefault = await startTestServer({ modules: { register: { perIpPerHour: 1 } } });
    try {
      const c = await anonymous(byDefault);
      for (const user of ["one", "two", "three"]) assert.equal((await c.iq(submit(user, "long-enough"))).attrs.type, "result", user);
      c.close();
    } finally {
      await byDefault.stop();
    }
    const ts = await startTestServer({ auth: { exemptNetworks: ["127.0.0.2/31"] }, modules: { register: { perIpPerHour: 1 } } });
    try {
      const office = await anonymous(ts, "127.0.0.3");
      for (const user of ["a1", "a2", "a3"]) assert.equal((await office.iq(submit(user, "long-enough"))).attrs.type, "result", user);
      const outside = await anonymous(ts, "127.0.0.4");
      assert.equal((await outside.iq(submit("b1", "long-enough"))).attrs.type, "result");
      assert.equal(errorCondition(await outside.iq(submit("b2", "long-enough"))), "resource-constraint");
      office.close();
      outside.close();
    } finally {
      await ts.stop();
    }
  });

  it("counts over a sliding hour, per address, IPv4-mapped or not; 0 disables the limit", () => {
    let now = 1_000_000;
    const limiter = new RegistrationLimiter(2, [], () => now);
    limiter.record("192.0.2.1");
    now += 30 * 60_000;
    limiter.record("::ffff:192.0.2.1");
    assert.equal(limiter.allowed("192.0.2.1"), false);
    assert.equal(limiter.allowed("192.0.2.2"), true);
    now += 30 * 60_000 + 1;
    assert.equal(limiter.allowed("192.0.2.1"), true, "the first registration left the window");
    limiter.record("192.0.2.1");
    assert.equal(limiter.allowed("192.0.2.1"), false);
    now += 3_600_001;
    limiter.sweep();
    assert.equal(limiter.allowed("192.0.2.1"), true);
    const unlimited = new RegistrationLimiter(0, [], () => now);
    for (let i = 0; i < 100; i++) unlimited.record("192.0.2.1");
    assert.equal(unlimited.allowed("192.0.2.1"), true);
  });

  it("refuses an invalid perIpPerHour at start", async () => {
    await assert.rejects(startTestServer({ modules: { register: { perIpPerHour: -1 } } }), /^ConfigError: modules\.register\.perIpPerHour: must be an integer of at least 0, got -1$/);
  });
});
