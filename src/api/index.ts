// The server API for app backends: an authenticated HTTP JSON API on the HTTP port under /api/v1/
// (documented in schemas/openapi/hearth-api.yaml). An app's backend provisions users, device tokens and
// groups and sends messages through it instead of shelling out to the CLI. On when api.keys has a key.
import type { IncomingMessage, ServerResponse } from "node:http";
import { defineModule } from "../modules/module.js";
import { ApiAuth, OAuthError } from "./auth.js";
import { ApiError, readBody, readJsonObject, sendError, sendJson } from "./http.js";
import { apiRoutes, type Route } from "./routes.js";

export const API_PREFIX = "/api/v1";

interface CompiledRoute { route: Route; pattern: RegExp; names: string[] }

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, (_m, name: string) => {
    names.push(name);
    return "([^/]+)";
  });
  return { route, pattern: new RegExp(`^${source}$`), names };
}

export const apiModule = defineModule({
  name: "api",
  xep: [
    { spec: "RFC 6749", title: "The OAuth 2.0 Authorization Framework", status: "partial", note: "client credentials grant (§4.4) for the server API" },
  ],
  setup(api) {
    const cfg = api.config.api;
    const auth = new ApiAuth(cfg, cfg);
    if (!auth.enabled) return;
    const log = api.log;
    const routes = apiRoutes(api).map(compile);

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const path = (req.url ?? "/").split("?")[0]!.slice(API_PREFIX.length);
      const method = req.method ?? "GET";
      if (path === "/oauth/token") return tokenEndpoint(req, res, method);
      const caller = auth.authenticate(req);
      auth.admit(caller);
      let allowed: string[] = [];
      for (const r of routes) {
        const m = r.pattern.exec(path);
        if (!m) continue;
        if (r.route.method !== method) { allowed.push(r.route.method); continue; }
        auth.requireScope(caller, r.route.scope);
        const params: Record<string, string> = {};
        try {
          r.names.forEach((name, i) => { params[name] = decodeURIComponent(m[i + 1]!); });
        } catch {
          throw new ApiError("invalid-request", "the path is not validly percent-encoded");
        }
        let body: Promise<Record<string, unknown>> | null = null;
        const reply = await r.route.handle({ params, req, body: () => (body ??= readJsonObject(req, cfg.maxBodyBytes)) });
        log.debug({ key: caller.key, method, route: r.route.path, status: reply.status }, "api request");
        sendJson(res, reply.status, reply.body);
        return;
      }
      allowed = [...new Set(allowed)];
      if (allowed.length > 0) throw new ApiError("method-not-allowed", `${method} is not allowed here (allowed: ${allowed.join(", ")})`, { allow: allowed.join(", ") });
      throw new ApiError("not-found", `no operation at ${API_PREFIX}${path} (see schemas/openapi/hearth-api.yaml)`);
    };

    /** RFC 6749 §4.4 client credentials: the client authenticates with HTTP Basic (§2.3.1) or body parameters. */
    const tokenEndpoint = async (req: IncomingMessage, res: ServerResponse, method: string): Promise<void> => {
      const oauthError = (status: number, error: string, description: string, headers: Record<string, string> = {}) =>
        sendJson(res, status, { error, error_description: description }, { pragma: "no-cache", ...headers });
      try {
        if (method !== "POST") throw new ApiError("method-not-allowed", "the token endpoint takes POST", { allow: "POST" });
        if (!auth.tokensEnabled) throw new ApiError("not-found", "the token endpoint is off (api.tokenTtlSeconds: 0)");
        const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        const raw = (await readBody(req, cfg.maxBodyBytes)).toString("utf8");
        if (type !== "application/x-www-form-urlencoded") {
          return oauthError(400, "invalid_request", "the body must be application/x-www-form-urlencoded (RFC 6749 §4.4.2)");
        }
        const form = new URLSearchParams(raw);
        if (form.get("grant_type") !== "client_credentials") {
          return oauthError(400, "unsupported_grant_type", "only grant_type=client_credentials is supported");
        }
        let id = form.get("client_id");
        let secret = form.get("client_secret");
        const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? "");
        if (basic) {
          const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
          const colon = decoded.indexOf(":");
          if (colon < 0) return oauthError(401, "invalid_client", "malformed Basic credentials", { "www-authenticate": 'Basic realm="hearth-api"' });
          // RFC 6749 §2.3.1: client id and secret are form-urlencoded inside Basic.
          id = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, " "));
          secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, " "));
        }
        if (!id || !secret) return oauthError(401, "invalid_client", "client authentication is required", { "www-authenticate": 'Basic realm="hearth-api"' });
        const token = auth.issueToken(id, secret, form.get("scope") ?? undefined);
        auth.admit({ key: id, scopes: new Set() });
        log.debug({ key: id, status: 200 }, "api access token issued");
        sendJson(res, 200, token, { pragma: "no-cache" });
      } catch (err) {
        if (err instanceof OAuthError) {
          if (err.status === 401) log.info({ peer: req.socket.remoteAddress, path: "/oauth/token", status: 401, reason: err.description }, "api request refused");
          oauthError(err.status, err.error, err.description, err.status === 401 ? { "www-authenticate": 'Basic realm="hearth-api"' } : {});
          return;
        }
        throw err;
      }
    };

    api.addHttpHandler(`${API_PREFIX}/`, (req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (err instanceof ApiError) {
          const where = { peer: req.socket.remoteAddress, method: req.method, path: (req.url ?? "").split("?")[0], status: err.status };
          // A refused key is logged once with its peer and reason (never the key); other refusals are the caller's business.
          if (err.status === 401) log.info({ ...where, reason: err.message }, "api request refused");
          else if (err.status >= 500) log.warn({ ...where, code: err.code, message: err.message }, "api request failed");
          else log.debug({ ...where, code: err.code }, "api request refused");
          sendError(res, err);
          return;
        }
        log.error({ err, method: req.method, path: (req.url ?? "").split("?")[0] }, "api request failed");
        sendError(res, new ApiError("internal-error", "the request failed on the server; see its log"));
      });
    });
  },
});
