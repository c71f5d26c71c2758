// The admin console at /admin/ on the HTTP port: one static page (page.ts) and a small JSON API under
// /admin/api/ that the page and the CLI call. Only admin.networks may connect (loopback by default).
// Two ways in:
//   - the page: POST /admin/login with an admin's XMPP password, checked through the one login path (SCRAM
//     keys, failure throttle, disabled accounts); a random session id in an HttpOnly SameSite=Strict
//     cookie, and every action also carries the session's CSRF token in a header, which another site's
//     page cannot read or send;
//   - the CLI: `Authorization: Bearer <token>` with the token the server writes to <dataDir>/admin.json
//     (mode 0600), so whoever may read the data directory may run admin commands.
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import { NetworkList } from "../auth/networks.js";
import { AccountDisabled, LoginThrottled } from "../auth/login.js";
import { tryParseJid } from "../jid/jid.js";
import type { ModuleApi } from "../modules/module.js";
import { AdminError, type AdminService } from "./service.js";
import { CONSOLE_PAGE } from "./page.js";
import { readBoundedBody } from "../http/body.js";

const COOKIE = "hearth_admin";
const MAX_BODY = 64 * 1024;
const MAX_CONSOLE_SESSIONS = 1000;

interface ConsoleSession { jid: string; csrf: string; expires: number }

class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

export interface Console {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** The CLI's bearer token. */
  readonly token: string;
}

export function createConsole(api: ModuleApi<unknown>, admin: AdminService): Console {
  const allowed = new NetworkList(api.config.admin.networks);
  const ttl = api.config.admin.sessionMinutes * 60_000;
  const sessions = new Map<string, ConsoleSession>();
  const token = randomBytes(32).toString("base64url");
  const log = api.log;

  /** An IP literal, localhost, a served domain or a subdomain of one (a reverse proxy's admin.example.com). */
  const knownHost = (header: string | undefined): boolean => {
    if (header === undefined) return false;
    const name = (header.startsWith("[") ? header.slice(1, header.indexOf("]")) : header.replace(/:\d+$/, "")).toLowerCase().replace(/\.$/, "");
    if (isIP(name) !== 0 || name === "localhost") return true;
    return api.config.hosts.some((h) => name === h || name.endsWith(`.${h}`));
  };
  const send = (res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, {
      "content-type": type, "cache-control": "no-store", "x-content-type-options": "nosniff", "x-frame-options": "DENY",
      "content-security-policy": "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
      "referrer-policy": "no-referrer", ...headers,
    });
    res.end(body);
  };
  const json = (res: ServerResponse, status: number, value: unknown, headers?: Record<string, string>) =>
    send(res, status, "application/json", JSON.stringify(value) + "\n", headers);

  const readBody = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    const type = req.headers["content-type"] ?? "";
    if (!type.startsWith("application/json")) throw new HttpError(415, "send application/json");
    const raw = await readBoundedBody(req, MAX_BODY);
    if (raw === null) throw new HttpError(413, "the body is larger than 64 KiB");
    try {
      const v = JSON.parse(raw.toString("utf8")) as unknown;
      if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error();
      return v as Record<string, unknown>;
    } catch { throw new HttpError(400, "the body is not a JSON object"); }
  };
  const str = (body: Record<string, unknown>, key: string, required = true): string => {
    const v = body[key];
    if (v === undefined && !required) return "";
    if (typeof v !== "string" || (required && v === "")) throw new HttpError(400, `${key}: a non-empty string is required`);
    return v;
  };

  const cookieOf = (req: IncomingMessage): string | null => {
    for (const part of (req.headers.cookie ?? "").split(";")) {
      const [k, v] = part.trim().split("=");
      if (k === COOKIE && v) return v;
    }
    return null;
  };
  const bearer = (req: IncomingMessage): boolean => {
    const h = req.headers.authorization;
    if (typeof h !== "string" || !h.startsWith("Bearer ")) return false;
    const given = Buffer.from(h.slice(7).trim()), expected = Buffer.from(token);
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  /** Who is asking: the CLI (bearer) or a console session; a state-changing request needs the CSRF token too. */
  const caller = (req: IncomingMessage, changing: boolean): { who: string; session: ConsoleSession | null } => {
    if (bearer(req)) return { who: "cli", session: null };
    const id = cookieOf(req);
    const s = id === null ? undefined : sessions.get(id);
    if (!s || s.expires < Date.now()) {
      if (id !== null) sessions.delete(id);
      throw new HttpError(401, "log in first");
    }
    if (changing) {
      const csrf = req.headers["x-csrf-token"];
      const ok = typeof csrf === "string" && csrf.length === s.csrf.length && timingSafeEqual(Buffer.from(csrf), Buffer.from(s.csrf));
      if (!ok) throw new HttpError(403, "missing or wrong X-CSRF-Token");
    }
    s.expires = Date.now() + ttl;
    // An admin removed from admin.accounts, or disabled, loses the console at the next request.
    if (!admin.isAdmin(s.jid)) throw new HttpError(403, "not an administrator");
    return { who: s.jid, session: s };
  };

  const login = async (req: IncomingMessage, res: ServerResponse) => {
    const body = await readBody(req);
    const j = tryParseJid(str(body, "jid"));
    const password = str(body, "password");
    if (!j || !j.local || j.resource || !api.hosts.includes(j.domain)) throw new HttpError(400, "jid: an account of this server (user@host) is required");
    const address = req.socket.remoteAddress ?? "";
    let ok: boolean;
    try {
      ok = await api.accounts.login.password(address, j.domain, j.local, password, "admin-console");
    } catch (err) {
      if (err instanceof LoginThrottled) throw new HttpError(429, err.message);
      if (err instanceof AccountDisabled) throw new HttpError(403, err.message);
      throw err;
    }
    if (!ok) throw new HttpError(401, "wrong address or password");
    if (!admin.isAdmin(j)) {
      log.info({ account: j.bareString(), peer: address }, "admin console login refused: not in admin.accounts");
      throw new HttpError(403, "this account is not an administrator (admin.accounts)");
    }
    const now = Date.now();
    for (const [k, s] of sessions) if (s.expires < now) sessions.delete(k);
    if (sessions.size >= MAX_CONSOLE_SESSIONS) throw new HttpError(503, "too many console sessions");
    const id = randomBytes(32).toString("base64url");
    const session = { jid: j.bareString(), csrf: randomBytes(24).toString("base64url"), expires: now + ttl };
    sessions.set(id, session);
    log.info({ account: session.jid, peer: address }, "admin console login");
    json(res, 200, { jid: session.jid, csrf: session.csrf }, { "set-cookie": `${COOKIE}=${id}; Path=/admin/; HttpOnly; SameSite=Strict` });
  };

  const state = async () => ({
    node: admin.nodeId(),
    nodes: await admin.nodes(),
    hosts: await admin.hostCounts(),
    sessions: admin.sessions(),
    rates: admin.rates(),
    rooms: admin.rooms(),
    errors: admin.errors(),
  });

  const action = async (name: string, body: Record<string, unknown>, who: string): Promise<Record<string, unknown>> => {
    log.info({ by: who, action: name }, "admin console action");
    switch (name) {
      case "kick": return { kicked: admin.kick(str(body, "jid")) };
      case "disable": return { changed: await admin.disable(str(body, "jid")) };
      case "enable": return { changed: await admin.enable(str(body, "jid")) };
      case "password": await admin.resetPassword(str(body, "jid"), str(body, "password")); return {};
      case "announce": return { sent: admin.announce(str(body, "host"), str(body, "body"), str(body, "subject", false) || undefined) };
      default: throw new HttpError(404, `no action ${name}`);
    }
  };

  const route = async (req: IncomingMessage, res: ServerResponse, path: string) => {
    const method = req.method ?? "GET";
    if (path === "/admin/" || path === "/admin/index.html") {
      if (method !== "GET" && method !== "HEAD") throw new HttpError(405, "GET only");
      send(res, 200, "text/html; charset=utf-8", CONSOLE_PAGE);
      return;
    }
    if (path === "/admin/login") {
      if (method !== "POST") throw new HttpError(405, "POST only");
      await login(req, res);
      return;
    }
    if (path === "/admin/logout") {
      if (method !== "POST") throw new HttpError(405, "POST only");
      caller(req, true);
      const id = cookieOf(req);
      if (id !== null) sessions.delete(id);
      json(res, 200, {}, { "set-cookie": `${COOKIE}=; Path=/admin/; HttpOnly; SameSite=Strict; Max-Age=0` });
      return;
    }
    if (path === "/admin/api/state") {
      if (method !== "GET") throw new HttpError(405, "GET only");
      const { who, session } = caller(req, false);
      json(res, 200, { ...(await state()), me: who, csrf: session?.csrf ?? null });
      return;
    }
    const m = /^\/admin\/api\/([a-z]+)$/.exec(path);
    if (m) {
      if (method !== "POST") throw new HttpError(405, "POST only");
      const { who } = caller(req, true);
      json(res, 200, await action(m[1]!, await readBody(req), who));
      return;
    }
    throw new HttpError(404, "not found");
  };

  return {
    token,
    handle(req, res) {
      const path = (req.url ?? "/").split("?")[0]!;
      const remote = req.socket.remoteAddress ?? "";
      // The CLI on the server's own machine connects from the address it reaches (http.bind): let its
      // token in from there even when admin.networks does not list that address.
      if (!allowed.has(remote) && !(remote === req.socket.localAddress && bearer(req))) {
        send(res, 403, "text/plain", "Forbidden: this address is not in admin.networks\n");
        return;
      }
      // DNS rebinding: a page of another site whose name now resolves to this server is same-origin to
      // itself; its Host header still names that site. The console answers only its own names.
      if (!bearer(req) && !knownHost(req.headers.host)) {
        send(res, 421, "text/plain", "Misdirected request: use the server's address or one of its domains\n");
        return;
      }
      route(req, res, path).catch((err: unknown) => {
        let status = 500, message = "internal error";
        if (err instanceof HttpError) { status = err.status; message = err.message; }
        else if (err instanceof AdminError) { status = err.code === "not-found" ? 404 : err.code === "forbidden" ? 403 : 400; message = err.message; }
        else log.error({ err }, "admin console request failed");
        // The rest of an oversized body is not read: the connection closes after the answer.
        if (!res.headersSent) json(res, status, { error: message }, status === 413 ? { connection: "close" } : undefined);
        else res.end();
      });
    },
  };
}
