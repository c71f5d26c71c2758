// FAST (XEP-0484) tokens beside the mobile protocol's device tokens: one token store lists and revokes
// both, rotation keeps the old token until the new one is used, `count` refuses replays, and
// `invalidate` logs a device out.
import assert from "node:assert/strict";
import { xml } from "../src/xml/element.js";
import { deviceTokenKey } from "../src/auth/tokens.js";
import { ErrorCode, MobileClient, MobileRequestError, Platform, mobileUser, startMobileServer, type MobileTestServer } from "./helpers/mobile-client.js";
import { BIND2, FAST, SASL2, jsClient, rawTokenLogin, type Token } from "./helpers/sasl2-client.js";

let n = 0;
const fresh = (name: string) => `${name}${++n}`;

async function fastToken(ts: MobileTestServer, user: string, agent: string): Promise<Token> {
  let token: Token | null = null;
  const c = jsClient(ts, user, "password", agent);
  c.xmpp.fast.saveToken = async (t: Token) => { token = t; };
  await c.xmpp.start();
  await c.xmpp.stop();
  assert.ok(token);
  return token;
}

async function mobileTokenRefused(ts: MobileTestServer, user: string, token: string, deviceId: string): Promise<void> {
  const c = await MobileClient.connect(ts.mobileUrl);
  try {
    await assert.rejects(c.login({ username: user, token, deviceId, platform: Platform.ANDROID }),
      (err: unknown) => err instanceof MobileRequestError && err.code === ErrorCode.TOKEN_INVALID);
  } finally {
    c.close();
  }
}

describe("FAST tokens and the shared token store", function () {
  this.timeout(30000);
  let ts: MobileTestServer;
  before(async () => { ts = await startMobileServer(); });
  after(() => ts.stop());

  it("issues a token at a password login, logs in with it without the password (xmpp.js), refuses it after a password change", async () => {
    const user = fresh("mercutio");
    const agent = "b7a6f1f2-2f61-4b39-9f4b-2f2d3a1c0003";
    await ts.accounts.create("localhost", user, "password");
    const issued = await fastToken(ts, user, agent);
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

  it("lists a mobile device token and a FAST token together and revokes each through the store", async () => {
    const user = fresh("nurse");
    const owner = `${user}@localhost`;
    const phone = await mobileUser(ts, user, { deviceId: "ph1" });
    const { token: deviceToken } = await phone.request("issueToken", { ttlSeconds: 3600 });
    phone.close();
    const agent = "0f6c3c1e-1a3b-4d5e-8f90-aaaaaaaa0001";
    const fast = await fastToken(ts, user, agent);

    const { tokens } = ts.server.context.accounts.login;
    const listed = await tokens.list(owner);
    assert.deepEqual(listed.map((t) => t.record.kind).sort(), ["device", "fast"]);
    const fastRow = listed.find((t) => t.record.kind === "fast")!;
    assert.equal(fastRow.record.kind === "fast" && fastRow.record.software, "hearth-test");

    assert.ok(await tokens.revoke(owner, deviceTokenKey(deviceToken)));
    await mobileTokenRefused(ts, user, deviceToken, "ph1");
    assert.equal((await rawTokenLogin(ts, user, fast.token, agent)).name, "success", "the FAST token is untouched");
    assert.ok(await tokens.revoke(owner, fastRow.key));
    assert.equal((await rawTokenLogin(ts, user, fast.token, agent)).name, "failure");
  });

  it("revokes the mobile device token and the FAST token when the password changes", async () => {
    const user = fresh("capulet");
    const phone = await mobileUser(ts, user, { deviceId: "ph2" });
    const { token: deviceToken } = await phone.request("issueToken", {});
    phone.close();
    const agent = "0f6c3c1e-1a3b-4d5e-8f90-aaaaaaaa0002";
    const fast = await fastToken(ts, user, agent);
    await ts.accounts.setPassword("localhost", user, "another-password");
    await mobileTokenRefused(ts, user, deviceToken, "ph2");
    assert.equal((await rawTokenLogin(ts, user, fast.token, agent)).name, "failure");
  });

  it("rotates: a token login may request a new token; the old one works until the new one is used", async () => {
    const user = fresh("friar");
    const agent = "0f6c3c1e-1a3b-4d5e-8f90-aaaaaaaa0003";
    await ts.accounts.create("localhost", user, "password");
    const first = await fastToken(ts, user, agent);
    const rotated = await rawTokenLogin(ts, user, first.token, agent,
      [xml("fast", { xmlns: FAST }), xml("request-token", { xmlns: FAST, mechanism: "HT-SHA-256-NONE" })]);
    assert.equal(rotated.name, "success");
    const second = rotated.getChild("token", FAST)!.attrs.token;
    assert.ok(second && second !== first.token);
    assert.equal((await rawTokenLogin(ts, user, first.token, agent)).name, "success", "the old token until the new one is used");
    assert.equal((await rawTokenLogin(ts, user, second, agent)).name, "success");
    assert.equal((await rawTokenLogin(ts, user, first.token, agent)).name, "failure", "the new one was used: the old one is gone");
  });

  it("refuses a count that does not grow, and invalidates the token on request", async () => {
    const user = fresh("balthasar");
    const agent = "0f6c3c1e-1a3b-4d5e-8f90-aaaaaaaa0004";
    await ts.accounts.create("localhost", user, "password");
    const { token } = await fastToken(ts, user, agent);
    const counted = (count: number, attrs: Record<string, string> = {}) => rawTokenLogin(ts, user, token, agent, [xml("fast", { xmlns: FAST, count: String(count), ...attrs })]);
    assert.equal((await counted(5)).name, "success");
    assert.equal((await counted(5)).name, "failure", "a replayed count");
    assert.equal((await counted(6, { invalidate: "true" })).name, "success");
    assert.equal((await counted(7)).name, "failure", "invalidated");
    assert.deepEqual(await ts.server.context.accounts.login.tokens.list(`${user}@localhost`), []);
  });
});
