// Login (password against the stored SCRAM keys, or a device token), tokens, logout, background mode.
import { randomBytes } from "node:crypto";
import { AccountDisabled, LoginThrottled } from "../../auth/login.js";
import { deviceTokenKey, type DeviceTokenRecord } from "../../auth/tokens.js";
import { claimResource } from "../../sessions/bind.js";
import { jid as makeJid, nodeprep, tryParseJid } from "../../jid/jid.js";
import {
  ErrorCode, KickReason, PROTOCOL_VERSION,
  type IssueToken, type LoginRequest, type LoginResult, type Ok, type Pong, type RevokeToken, type SetBackground, type TokenIssued,
} from "../schema.js";
import { MobileError, invalid } from "../errors.js";
import { CLOSE, MobileSession, platformClass } from "../session.js";
import { presenceStanza } from "../bridge.js";
import { clientId, text } from "./validate.js";

const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Failed logins on one connection before it is closed. */
const MAX_LOGIN_FAILURES = 3;

export function mobileSessionsOf(s: MobileSession, owner: string): MobileSession[] {
  return s.ctx.api.sessions.resources(owner).filter((x): x is MobileSession => x instanceof MobileSession);
}

export async function login(s: MobileSession, req: LoginRequest): Promise<LoginResult> {
  if (s.authenticated) throw new MobileError(ErrorCode.ALREADY_AUTHENTICATED, "this connection is logged in already");
  const { ctx } = s;
  const { api, opts } = ctx;
  if (req.protocolVersion !== 0 && req.protocolVersion !== PROTOCOL_VERSION) {
    throw new MobileError(ErrorCode.UNSUPPORTED_VERSION, `this server speaks protocol version ${PROTOCOL_VERSION}`);
  }
  if (!DEVICE_ID.test(req.deviceId)) throw invalid("device_id: 1-64 characters of A-Z a-z 0-9 . _ - are required");
  text(req.clientVersion, "client_version", 256);
  const { user, host } = parseUsername(s, req.username);
  const owner = `${user}@${host}`;
  const tokenHashValue = await authenticate(s, req, user, host);
  if (s.closed) throw new MobileError(ErrorCode.UNAVAILABLE, "the connection closed");

  let full;
  try {
    full = makeJid(user, host, `mobile-${req.deviceId}`);
  } catch {
    throw invalid("device_id: not usable as a resource");
  }
  // Login conflicts: the same device on another connection, then the per-class device limit.
  const by = { deviceId: req.deviceId, platform: req.platform };
  const claimed = claimResource(api.sessions, s, full, api.config.c2s.resourceConflict, (holder) => {
    if (holder instanceof MobileSession) holder.kick(KickReason.SAME_DEVICE, "this device logged in on another connection", by);
    else holder.close("conflict", "replaced by the mobile device");
  });
  if (!claimed) throw new MobileError(ErrorCode.CONFLICT, "this device is logged in on another connection (c2s.resourceConflict: refuse)");
  const cls = platformClass(req.platform);
  const limit = opts.devicesPerClass[cls];
  if (limit > 0) {
    const same = mobileSessionsOf(s, owner).filter((x) => x.platformClass === cls && !x.closed).sort((a, b) => a.loggedInAt - b.loggedInAt);
    while (same.length >= limit) same.shift()!.kick(KickReason.LOGIN_CONFLICT, `another ${cls} logged in`, by);
  }

  s.username = user;
  s.host = host;
  s.jid = full;
  s.deviceId = req.deviceId;
  s.platform = req.platform;
  s.platformClass = cls;
  s.clientVersion = req.clientVersion;
  s.tokenHash = tokenHashValue;
  s.loggedInAt = Date.now();
  s.interested = true;
  // Registered from here on, the session may be sent stanzas before this request is answered: their
  // pushes follow the LoginResult (and timeline rows wait for the sync, which starts after it).
  s.holdPushes();
  api.sessions.add(s);
  await api.notify(s.host, "resource-bind", { session: s });

  const timeline = api.store.timeline;
  const maxSeq = await timeline.lastSeq(owner);
  const stored = Number((await ctx.devices.get(owner, `ack:${req.deviceId}`)) ?? "0");
  s.acked = Number.isSafeInteger(stored) && stored > 0 ? Math.min(stored, maxSeq) : 0;
  const resume = req.resumeAfterSeq !== undefined ? Math.max(0, Math.min(req.resumeAfterSeq, maxSeq)) : s.acked;
  s.sentUpTo = resume;
  if (req.background) s.setBackground(true);

  s.afterReply = async () => {
    // The sync from the resume point starts first, so that the offline messages the initial presence
    // releases (RFC 6121 §4.2, XEP-0160) join it in order instead of overtaking it.
    void s.sync(true);
    await s.route(presenceStanza(0, ""));
  };
  const hb = opts.heartbeatSeconds * 1000;
  const bg = opts.backgroundHeartbeatSeconds * 1000;
  return {
    jid: full.toString(),
    sessionId: s.id,
    serverTime: Date.now(),
    heartbeatIntervalMs: Math.round(hb),
    heartbeatTimeoutMs: Math.round(hb * opts.heartbeatTimeoutMultiplier),
    backgroundHeartbeatIntervalMs: Math.round(bg),
    backgroundHeartbeatTimeoutMs: Math.round(bg * opts.heartbeatTimeoutMultiplier),
    maxSeq,
    resumeAfterSeq: resume,
    maxFrameBytes: opts.maxFrameBytes,
    protocolVersion: PROTOCOL_VERSION,
    recallWindowSeconds: ctx.retraction.windowSeconds,
    groupsEnabled: ctx.groups.enabled(),
    groupDomain: ctx.groups.domain() ?? "",
    maxUploadBytes: ctx.api.useOptional("upload")?.maxFileSize ?? 0,
  };
}

function parseUsername(s: MobileSession, username: string): { user: string; host: string } {
  const hosts = s.ctx.api.hosts;
  if (typeof username !== "string" || username === "" || username.length > 3071) throw invalid("username is required");
  if (username.includes("@")) {
    const j = tryParseJid(username);
    if (!j || j.local === "" || j.resource !== "") throw invalid("username: a localpart or a bare JID is required");
    if (!hosts.includes(j.domain)) {
      // Answered like a wrong password (no account can match), and counted like one.
      s.ctx.api.accounts.login.failed(s.remoteAddress, null);
      failed(s, ErrorCode.AUTH_FAILED, "wrong username or password");
    }
    return { user: j.local, host: j.domain };
  }
  try {
    return { user: nodeprep(username), host: hosts[0]! };
  } catch {
    throw invalid("username: not a valid localpart");
  }
}

/**
 * Checks the password or the device token through the login path every protocol shares (one failure
 * throttle, src/auth). Returns the token's key in the shared token store for a token login, null for a
 * password login.
 */
async function authenticate(s: MobileSession, req: LoginRequest, user: string, host: string): Promise<string | null> {
  const { login } = s.ctx.api.accounts;
  try {
    if (req.password !== undefined) {
      if (!(await login.password(s.remoteAddress, host, user, req.password))) failed(s, ErrorCode.AUTH_FAILED, "wrong username or password");
      return null;
    }
    if (req.token === undefined) throw invalid("a password or a token is required");
    const hash = deviceTokenKey(req.token);
    const valid = await login.attempt(s.remoteAddress, host, user, async (account) => {
      const record = account ? await login.tokens.get(`${user}@${host}`, hash) : null;
      return record?.kind === "device" && record.expires >= Date.now() && record.device === req.deviceId;
    }, "mobile-token");
    if (!valid) failed(s, ErrorCode.TOKEN_INVALID, "the token is unknown, expired, revoked or not this device's");
    return hash;
  } catch (err) {
    if (err instanceof LoginThrottled) throw new MobileError(ErrorCode.AUTH_THROTTLED, "too many failed logins; try again later", err.retryAfterMs);
    if (err instanceof AccountDisabled) throw new MobileError(ErrorCode.AUTH_FAILED, "the account is disabled");
    throw err;
  }
}

function failed(s: MobileSession, code: ErrorCode, message: string): never {
  if (++s.loginFailures >= MAX_LOGIN_FAILURES) s.afterReply = () => s.end(CLOSE.policy, "too many failed logins", "login failures");
  throw new MobileError(code, message);
}

export function ping(_s: MobileSession, req: { clientTime: number }): Pong {
  return { serverTime: Date.now(), clientTime: req.clientTime };
}

export function setBackground(s: MobileSession, req: SetBackground): Ok {
  s.setBackground(req.background);
  return {};
}

export async function issueToken(s: MobileSession, req: IssueToken): Promise<TokenIssued> {
  const { opts } = s.ctx;
  const { tokens } = s.ctx.api.accounts.login;
  const ttl = Math.min(req.ttlSeconds > 0 ? req.ttlSeconds : opts.tokenTtlSeconds, opts.maxTokenTtlSeconds);
  const token = `hm1.${randomBytes(32).toString("base64url")}`;
  const now = Date.now();
  const record: DeviceTokenRecord = { kind: "device", device: s.deviceId, platform: s.platform, created: now, expires: now + ttl * 1000 };
  await tokens.put(s.owner, deviceTokenKey(token), record);
  return { token, expiresAt: record.expires };
}

export async function revokeToken(s: MobileSession, req: RevokeToken): Promise<Ok> {
  let hash: string;
  if (req.token === "") {
    if (!s.tokenHash) throw new MobileError(ErrorCode.NOT_FOUND, "this connection did not log in with a token");
    hash = s.tokenHash;
  } else {
    clientId(req.token.slice(0, 64), "token");
    hash = deviceTokenKey(req.token);
  }
  const owner = s.owner;
  if ((await s.ctx.api.accounts.login.tokens.get(owner, hash))?.kind !== "device") throw new MobileError(ErrorCode.NOT_FOUND, "no such token");
  await s.ctx.api.accounts.login.tokens.revoke(owner, hash);
  for (const other of mobileSessionsOf(s, owner)) {
    if (other !== s && other.tokenHash === hash) other.kick(KickReason.TOKEN_REVOKED, "the token this device logged in with was revoked");
  }
  return {};
}

export async function logout(s: MobileSession): Promise<Ok> {
  if (s.tokenHash) await s.ctx.api.accounts.login.tokens.revoke(s.owner, s.tokenHash);
  s.afterReply = () => s.end(CLOSE.normal, "logged out", "logout");
  return {};
}
