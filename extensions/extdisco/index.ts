// XEP-0215 External Service Discovery: the STUN/TURN servers the configuration lists, so that calls
// (Jingle, XEP-0167/0176) in Conversations, Dino and Gajim can start. TURN servers configured with the
// TURN REST shared secret (coturn's use-auth-secret / static-auth-secret) get time-limited credentials:
// username "<expiry unix seconds>:<bare JID>", password base64(HMAC-SHA1(secret, username)).
import { createHmac } from "node:crypto";
import { moduleOptions } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { xml, type Element } from "../../src/xml/element.js";
import { StanzaError } from "../../src/xml/stanza.js";

export const NS_EXTDISCO = "urn:xmpp:extdisco:2";

export interface ExternalService {
  type: "stun" | "stuns" | "turn" | "turns";
  host: string;
  port: number;
  transport: "udp" | "tcp";
}

/**
 * A service in the URI syntax of RFC 7064 (STUN) and RFC 7065 (TURN), e.g. "stun:stun.example.org",
 * "turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349?transport=tcp".
 */
export function parseServiceUri(value: string): ExternalService | undefined {
  const m = /^(stuns?|turns?):(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?(?:\?transport=(udp|tcp))?$/.exec(value.trim());
  if (!m) return undefined;
  const type = m[1] as ExternalService["type"];
  const secure = type.endsWith("s");
  const port = m[3] ? Number(m[3]) : secure ? 5349 : 3478;
  if (port < 1 || port > 65_535) return undefined;
  // RFC 7065 §3: "transport" is for TURN only; stuns/turns run over TLS, that is TCP.
  if (m[4] && !type.startsWith("turn")) return undefined;
  const transport = (m[4] as ExternalService["transport"] | undefined) ?? (secure ? "tcp" : "udp");
  if (secure && transport === "udp") return undefined;
  return { type, host: m[2]!.replace(/^\[|\]$/g, ""), port, transport };
}

export const extdiscoOptions = moduleOptions("External service discovery (XEP-0215): STUN/TURN servers for audio and video calls.", {
  services: {
    kind: "list",
    default: [],
    minItems: 0,
    itemExpect: 'a STUN/TURN URI such as "stun:stun.example.org" or "turn:turn.example.org:3478?transport=udp"',
    acceptItem: (v) => (parseServiceUri(v) ? v.trim() : undefined),
    description: "STUN and TURN servers offered to clients (RFC 7064/7065 URIs; default ports 3478, TLS 5349).",
  },
  secret: {
    kind: "string",
    secret: true,
    nullable: true,
    default: null,
    expect: "a string of at least 16 characters",
    accept: (v) => (v.length >= 16 ? v : undefined),
    description: "TURN REST shared secret (coturn static-auth-secret): TURN entries get time-limited credentials; null: none.",
  },
  credentialTtlSeconds: {
    kind: "integer",
    min: 60,
    max: 30 * 86_400,
    default: 86_400,
    description: "How long TURN credentials are valid, in seconds.",
  },
});

/** TURN REST credentials (draft-uberti-behave-turn-rest-00 §2.2) for `user`, valid until `expires` (s). */
export function turnCredentials(secret: string, user: string, expires: number): { username: string; password: string } {
  const username = `${expires}:${user}`;
  return { username, password: createHmac("sha1", secret).update(username).digest("base64") };
}

export const extdisco = defineModule({
  name: "extdisco",
  xep: [{ spec: "XEP-0215", title: "External Service Discovery", version: "1.0.0", status: "complete", note: "STUN/TURN from config; TURN REST credentials; no push updates" }],
  options: extdiscoOptions,
  setup(api) {
    const o = api.options;
    const services = o.services.map((s) => parseServiceUri(s)!);
    if (services.length === 0) return; // nothing to offer: not advertised
    api.addFeature(NS_EXTDISCO);

    const restricted = (s: ExternalService) => o.secret !== null && s.type.startsWith("turn");
    const describe = (s: ExternalService, user: string, now: number): Element => {
      const el = xml("service", { type: s.type, host: s.host, port: String(s.port), transport: s.transport });
      if (restricted(s)) {
        const expires = Math.floor(now / 1000) + o.credentialTtlSeconds;
        const c = turnCredentials(o.secret!, user, expires);
        el.attrs.restricted = "1";
        el.attrs.username = c.username;
        el.attrs.password = c.password;
        el.attrs.expires = new Date(expires * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
      }
      return el;
    };

    /** Credentials are for this server's users only (they open a relay paid for by its operator). */
    const user = (ev: { from: { domain: string; bareString(): string } }): string => {
      if (!api.hosts.includes(ev.from.domain)) throw new StanzaError("forbidden", "external services are for this server's users", "auth");
      return ev.from.bareString();
    };

    // XEP-0215 §3.1/§3.2: every service, or those of one type.
    api.onIq("get", "host", NS_EXTDISCO, "services", (ev) => {
      const who = user(ev);
      const type = ev.stanza.getChild("services", NS_EXTDISCO)!.attrs.type;
      const now = Date.now();
      return xml("services", { xmlns: NS_EXTDISCO, type },
        ...services.filter((s) => !type || s.type === type).map((s) => describe(s, who, now)));
    });

    // XEP-0215 §3.3: credentials for one service, named by host and type (and port when given).
    api.onIq("get", "host", NS_EXTDISCO, "credentials", (ev) => {
      const who = user(ev);
      const want = ev.stanza.getChild("credentials", NS_EXTDISCO)!.getChild("service");
      if (!want?.attrs.host || !want.attrs.type) throw new StanzaError("bad-request", "credentials name a service by host and type", "modify");
      const port = want.attrs.port ? Number(want.attrs.port) : null;
      const s = services.find((x) => x.host === want.attrs.host && x.type === want.attrs.type && (port === null || x.port === port) && restricted(x));
      if (!s) throw new StanzaError("item-not-found", "no such service with credentials", "cancel");
      return xml("credentials", { xmlns: NS_EXTDISCO }, describe(s, who, Date.now()));
    });
  },
});
