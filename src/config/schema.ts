// The configuration schema: one tree that drives defaults, validation, environment overrides, the
// README reference table and the commented example file. Adding a key here is all it takes.
import { isIP } from "node:net";
import { canonicalNetwork } from "../auth/networks.js";

export type PathSegment = string | number;

export interface CertPaths {
  cert: string;
  key: string;
}

interface LeafBase<T> {
  description: string;
  default: T;
  /** Shown in docs instead of `default` when the effective default is derived from other keys. */
  defaultNote?: string;
}

export interface StringLeaf extends LeafBase<string | null> {
  kind: "string";
  nullable?: boolean;
  /** What a valid value looks like, for error messages ("a non-empty string"). */
  expect: string;
  /** Returns the normalized value, or undefined when the value is not acceptable. */
  accept: (value: string) => string | undefined;
  /** The value is a secret: `hearth check-config` never prints it. */
  secret?: boolean;
  /** A URL that may carry a password (`user:password@`): printed without it. */
  passwordInUrl?: boolean;
}

export interface IntegerLeaf extends LeafBase<number | null> {
  kind: "integer";
  min: number;
  /** Number.MAX_SAFE_INTEGER for "no upper bound". */
  max: number;
  nullable?: boolean;
}

/** A number that may have a fraction (seconds, multipliers). */
export interface NumberLeaf extends LeafBase<number | null> {
  kind: "number";
  min: number;
  max: number;
  nullable?: boolean;
}

export interface BooleanLeaf extends LeafBase<boolean> {
  kind: "boolean";
}

export interface EnumLeaf extends LeafBase<string> {
  kind: "enum";
  values: readonly string[];
}

export interface ListLeaf extends LeafBase<readonly string[]> {
  kind: "list";
  /** What one item looks like, for error messages. */
  itemExpect: string;
  acceptItem: (value: string) => string | undefined;
  minItems: number;
}

export interface CertMapLeaf extends LeafBase<Record<string, CertPaths>> {
  kind: "certMap";
  /** Commented example lines for the rendered YAML. */
  example: string[];
}

/** A mapping of checked keys to checked string values (s2s.routes). */
export interface MapLeaf extends LeafBase<Record<string, string>> {
  kind: "map";
  keyExpect: string;
  acceptKey: (key: string) => string | undefined;
  valueExpect: string;
  acceptValue: (value: string) => string | undefined;
  /** Commented example lines for the rendered YAML. */
  example: string[];
  /** The values are secrets (api.keys): an error names the key, never the value; check-config prints neither. */
  secret?: boolean;
}

export type Leaf = StringLeaf | IntegerLeaf | NumberLeaf | BooleanLeaf | EnumLeaf | ListLeaf | CertMapLeaf | MapLeaf;

export interface Section {
  kind: "section";
  description: string;
  fields: Record<string, SchemaNode>;
  /** When set, keys other than `fields` are free-form option mappings (modules.<name>). */
  openEntries?: { description: string; example: string[] };
}

export type SchemaNode = Leaf | Section;

/** A rule across several keys broke: the key to blame (relative to the section) and why. */
export interface OptionProblem {
  key: string;
  problem: string;
}

/**
 * The options of a module, `modules.<name>`: a section of the same leaves as the rest of the schema,
 * checked key by key (unknown keys rejected, defaults filled), then by `check` across keys.
 */
export interface OptionsSection<O = unknown> extends Section {
  check?(options: O): OptionProblem | undefined;
}

/** The value a schema node validates to. */
export type ValueOf<N> = N extends { kind: "section"; fields: infer F }
  ? { -readonly [K in keyof F]: ValueOf<F[K]> }
  : N extends { kind: "integer" | "number" | "string" }
    ? (N extends { kind: "string" } ? string : number) | (N extends { nullable: true } ? null : never)
    : N extends { kind: "boolean" }
      ? boolean
      : N extends { kind: "enum"; values: readonly (infer V)[] }
        ? V
        : N extends { kind: "list" }
          ? string[]
          : N extends { kind: "certMap" }
            ? Record<string, CertPaths>
            : never;

/** The options value of a declared options section: `type MamOptions = OptionsOf<typeof mamOptions>`. */
export type OptionsOf<S> = S extends OptionsSection<infer O> ? O : never;

/** Declares a module's options; the module's `api.options` is typed from `fields`. */
export function moduleOptions<const F extends Record<string, SchemaNode>>(
  description: string,
  fields: F,
  check?: (options: ValueOf<{ kind: "section"; fields: F }>) => OptionProblem | undefined,
): OptionsSection<ValueOf<{ kind: "section"; fields: F }>> {
  return check === undefined ? { kind: "section", description, fields } : { kind: "section", description, fields, check };
}

export type Checked =
  | { ok: true; value: unknown }
  | { ok: false; problem: string; at?: PathSegment[] };

// The mechanisms src/c2s/sasl implements; extend together with it.
export const KNOWN_SASL_MECHANISMS: readonly string[] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Lower-cased ASCII domain name (RFC 7622 §3.2: a trailing dot is removed), or undefined. */
export function normalizeDomain(input: string): string | undefined {
  let name = input.trim().toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) return undefined;
  const labels = name.split(".");
  if (!labels.every((label) => LABEL.test(label))) return undefined;
  // An all-numeric last label means an IP address or a typo, never a served domain.
  if (/^[0-9]+$/.test(labels[labels.length - 1]!)) return undefined;
  return name;
}

export function nonEmpty(value: string): string | undefined {
  return value.trim() === "" ? undefined : value;
}

function bindAddress(value: string): string | undefined {
  const trimmed = value.trim();
  if (isIP(trimmed) !== 0) return trimmed;
  return normalizeDomain(trimmed);
}

function postgresUrl(value: string): string | undefined {
  return /^postgres(ql)?:\/\/\S+$/.test(value.trim()) ? value.trim() : undefined;
}

export function httpPath(value: string): string | undefined {
  return /^\/[^\s?#]*$/.test(value) ? value : undefined;
}

/** A web origin: scheme, host and optional port, no path (the Origin header's form). */
function httpOrigin(value: string): string | undefined {
  return /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$/.test(value) ? value.toLowerCase() : undefined;
}

function saslMechanism(value: string): string | undefined {
  const upper = value.trim().toUpperCase();
  return KNOWN_SASL_MECHANISMS.includes(upper) ? upper : undefined;
}

/** "host:port" or "[v6]:port". */
function hostPort(value: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s\[\]]+)):(\d{1,5})$/.exec(value.trim());
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const p = Number(m[3]);
  if (p < 1 || p > 65535 || (m[1] !== undefined && isIP(host) !== 6)) return undefined;
  if (m[2] !== undefined && isIP(host) === 0 && normalizeDomain(host) === undefined) return undefined;
  return value.trim();
}

/** An s2s route: "host:port" for STARTTLS, "tls://host:port" for direct TLS (XEP-0368). */
function s2sRoute(value: string): string | undefined {
  const trimmed = value.trim();
  const direct = trimmed.startsWith("tls://");
  const target = hostPort(direct ? trimmed.slice(6) : trimmed);
  return target === undefined ? undefined : direct ? `tls://${target}` : target;
}

function redisUrl(value: string): string | undefined {
  const trimmed = value.trim();
  return /^rediss?:\/\/\S+$/.test(trimmed) ? trimmed : undefined;
}

function nodeName(value: string): string | undefined {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : undefined;
}

/** user@host, lower-cased (the hosts list decides whether the host is served). */
function bareJid(value: string): string | undefined {
  const m = /^([^@/\s]+)@([^@/\s]+)$/.exec(value.trim());
  if (!m) return undefined;
  const domain = normalizeDomain(m[2]!);
  return domain === undefined ? undefined : `${m[1]!.toLowerCase()}@${domain}`;
}

function moduleName(value: string): string | undefined {
  return /^[A-Za-z0-9_.-]+$/.test(value) ? value : undefined;
}

/** The scopes of the server API (src/api): what an API key may do. */
export const API_SCOPES = ["users", "tokens", "messages", "groups", "presence"] as const;

function apiKeyName(value: string): string | undefined {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : undefined;
}

/** "sha256:<hex>" (normalized to lower case) or a literal key of at least 32 printable characters. */
function apiKeySpec(value: string): string | undefined {
  const v = value.trim();
  if (/^sha256:[0-9a-fA-F]{64}$/.test(v)) return v.toLowerCase();
  return /^[\x21-\x7e]{32,512}$/.test(v) && !v.startsWith("sha256:") ? v : undefined;
}

function apiScopeList(value: string): string | undefined {
  const items = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (items.length === 0 || !items.every((s) => (API_SCOPES as readonly string[]).includes(s))) return undefined;
  return [...new Set(items)].join(",");
}

const port = (def: number | null, description: string): IntegerLeaf => ({
  kind: "integer",
  min: 0,
  max: 65535,
  nullable: true,
  default: def,
  description: `${description} null (or off) disables it; 0 picks a free port (for tests).`,
});

/** A list of client networks, loopback by default. */
const networks = (description: string): ListLeaf => ({
  kind: "list",
  default: ["127.0.0.0/8", "::1/128"],
  minItems: 0,
  itemExpect: "an IP network in CIDR notation (192.0.2.0/24, 2001:db8::/32) or a single address",
  acceptItem: canonicalNetwork,
  description,
});

export const bind = (description: string): StringLeaf => ({
  kind: "string",
  default: "0.0.0.0",
  expect: "an IP address or host name",
  accept: bindAddress,
  description,
});

export const schema: Section = {
  kind: "section",
  description: "hearth configuration.",
  fields: {
    hosts: {
      kind: "list",
      default: ["localhost"],
      minItems: 1,
      itemExpect: "a domain name (ASCII; write internationalized names in punycode)",
      acceptItem: normalizeDomain,
      description: "XMPP domains served by this server. The first one is the default domain.",
    },
    dataDir: {
      kind: "string",
      default: "./data",
      expect: "a non-empty path",
      accept: nonEmpty,
      description:
        "Directory for the embedded database and generated certificates, relative to the working directory.",
    },
    log: {
      kind: "section",
      description: "Logging.",
      fields: {
        level: {
          kind: "enum",
          values: ["trace", "debug", "info", "warn", "error", "fatal", "silent"],
          default: "info",
          description: "Minimum level written to the log.",
        },
        stanzas: {
          kind: "boolean",
          default: false,
          description: "Log every stanza in and out at debug level (verbose; contains message bodies).",
        },
        format: {
          kind: "enum",
          values: ["auto", "json", "pretty"],
          default: "auto",
          description:
            "json: one JSON object per line (for log collectors); pretty: one human-readable line per entry; auto: pretty when stdout is a terminal, json otherwise.",
        },
      },
    },
    c2s: {
      kind: "section",
      description: "Client connections (RFC 6120) over TCP.",
      fields: {
        bind: bind("Address to listen on for client connections."),
        port: port(5222, "Port for client connections (STARTTLS)."),
        directTlsPort: port(5223, "Port for client connections with TLS from the first byte (XEP-0368)."),
        requireTls: {
          kind: "boolean",
          default: true,
          description: "Refuse authentication before TLS is negotiated (RFC 6120 §5.1).",
        },
        resourceConflict: {
          kind: "enum",
          values: ["kick-old", "refuse"],
          default: "kick-old",
          description:
            "When a client binds a resource already in use (an XMPP resource, or a mobile device logging in again): disconnect the old session, or refuse the new one (RFC 6120 §7.7.2.2).",
        },
        maxOutboundBytes: {
          kind: "integer",
          min: 65_536,
          max: 1024 * 1024 * 1024,
          default: 4 * 1024 * 1024,
          description:
            "Output a client session (TCP, TLS or WebSocket) may have queued that its peer has not read yet. A session past it is closed with a policy-violation stream error; what it did not get stays in its archive, and what was still queued is offered again as offline messages at the next login.",
        },
        smResumeSeconds: {
          kind: "integer",
          min: 1,
          max: 86_400,
          default: 300,
          description:
            "How long a client session with stream management (XEP-0198) waits for its client to resume it after the connection dropped (the `max` offered). Meanwhile it stays online and what arrives for it is held; after it, the session ends and every message it had not acknowledged is delivered at the next login.",
        },
        smDurable: {
          kind: "boolean",
          default: true,
          description:
            "Keep a record of each resumable session (XEP-0198) in the store, so that a client can resume after the node restarted or on another cluster node. A message then waits for one coalesced store write before it is sent; off, resumption lives in the node's memory only.",
        },
      },
    },
    http: {
      kind: "section",
      description: "HTTP listener: XMPP over WebSocket (RFC 7395), BOSH (XEP-0206) and XEP-0156 host-meta.",
      fields: {
        bind: bind("Address to listen on for HTTP."),
        port: port(5280, "Port for HTTP."),
        websocketPath: {
          kind: "string",
          default: "/xmpp-websocket",
          expect: 'a URL path starting with "/"',
          accept: httpPath,
          description: "URL path of the XMPP WebSocket endpoint.",
        },
        corsOrigins: {
          kind: "list",
          default: [],
          minItems: 0,
          itemExpect: 'an origin such as "https://chat.example.com"',
          acceptItem: httpOrigin,
          description:
            "Web origins allowed to call BOSH and read host-meta from a browser (CORS Access-Control-Allow-Origin). Empty allows every origin (`*`); the session id is the only credential a BOSH request carries.",
        },
        bosh: {
          kind: "section",
          description: "XMPP over BOSH (XEP-0124, XEP-0206): long-polling HTTP for web clients and proxies that cannot use WebSocket.",
          fields: {
            enabled: { kind: "boolean", default: true, description: "Serve BOSH on the HTTP port." },
            path: {
              kind: "string",
              default: "/http-bind",
              expect: 'a URL path starting with "/"',
              accept: httpPath,
              description: "URL path of the BOSH endpoint.",
            },
            maxWait: {
              kind: "integer",
              min: 1,
              max: 120,
              default: 60,
              description: "Longest time (seconds) a request is held waiting for output before it is answered empty; a client asking for more gets this.",
            },
            maxHold: {
              kind: "integer",
              min: 1,
              max: 5,
              default: 2,
              description: "Most requests the server holds at once per session; a client may make one more than it holds (`requests`).",
            },
            inactivitySeconds: {
              kind: "integer",
              min: 1,
              max: 600,
              default: 60,
              description:
                "How long a session may have no request waiting before it is taken for a dropped connection (a session with stream management resumption then waits for its client, as after a dropped socket).",
            },
          },
        },
      },
    },
    ops: {
      kind: "section",
      description: "Operations on the HTTP port: Prometheus metrics (/metrics) and health checks (/health/live, /health/ready).",
      fields: {
        metrics: {
          kind: "boolean",
          default: true,
          description: "Serve Prometheus metrics at /metrics.",
        },
        networks: networks(
          "Client networks allowed to read /metrics (others get 403); add your Prometheus server's. The health checks answer everyone: they tell nothing but up or down.",
        ),
      },
    },
    api: {
      kind: "section",
      description:
        "The server API for app backends: an HTTP JSON API under /api/v1/ on the HTTP port (schemas/openapi/hearth-api.yaml), on when at least one key is configured.",
      fields: {
        keys: {
          kind: "map",
          default: {},
          keyExpect: "key names (letters, digits, _ . -)",
          acceptKey: apiKeyName,
          valueExpect: '"sha256:" and the 64 hex digits of the key\'s SHA-256, or the key itself (at least 32 characters)',
          acceptValue: apiKeySpec,
          secret: true,
          example: ['backend: "sha256:<hex of: printf %s KEY | sha256sum>"'],
          description:
            "API keys by name. A client sends the key as `Authorization: Bearer KEY` (or uses it as the client secret of the OAuth2 token endpoint). Prefer the SHA-256 form: the config then holds no usable secret.",
        },
        scopes: {
          kind: "map",
          default: {},
          keyExpect: "key names of api.keys",
          acceptKey: apiKeyName,
          valueExpect: `a comma-separated list of scopes (${API_SCOPES.join(", ")})`,
          acceptValue: apiScopeList,
          example: ["backend: users,tokens,messages"],
          description: "What each key may do; a key without an entry has every scope.",
        },
        maxBodyBytes: {
          kind: "integer",
          min: 256,
          max: 16 * 1024 * 1024,
          default: 65_536,
          description: "Largest request body accepted (413 above).",
        },
        requestsPerSecond: {
          kind: "number",
          min: 0,
          max: 1_000_000,
          default: 20,
          description: "Requests per second per key (token bucket; 429 with Retry-After above it). 0: no limit.",
        },
        requestBurst: {
          kind: "integer",
          min: 1,
          max: 1_000_000,
          default: 100,
          description: "Requests a key may make in a burst above requestsPerSecond.",
        },
        tokenTtlSeconds: {
          kind: "integer",
          min: 0,
          max: 86_400,
          default: 3600,
          description: "Lifetime of an OAuth2 client-credentials access token (POST /api/v1/oauth/token, RFC 6749 §4.4); 0 turns the token endpoint off.",
        },
      },
    },
    admin: {
      kind: "section",
      description:
        "Administration: the admin console at /admin/ on the HTTP port, XEP-0133 ad-hoc commands and the CLI commands that act on a running server (sessions, kick, disable, enable, announce).",
      fields: {
        accounts: {
          kind: "list",
          default: [],
          minItems: 0,
          itemExpect: "a bare JID (user@host) of a served host",
          acceptItem: bareJid,
          description:
            "Accounts allowed to administer the server: log in to the console with their XMPP password and run the XEP-0133 commands. Empty: nobody (the CLI still works for whoever can read the data directory).",
        },
        networks: networks(
          "Client networks allowed to reach the admin console and its API (others get 403). Loopback only by default; put the console behind a TLS reverse proxy before opening it wider.",
        ),
        sampleSeconds: {
          kind: "integer",
          min: 1,
          max: 300,
          default: 10,
          description: "Interval of the message and login rate samples the console charts (the last 60 samples are kept).",
        },
        sessionMinutes: {
          kind: "integer",
          min: 1,
          max: 1440,
          default: 60,
          description: "A console login ends after this long without a request.",
        },
      },
    },
    tls: {
      kind: "section",
      description:
        "TLS certificates (PEM files). A host without a configured certificate gets a self-signed one, generated on first start under <dataDir>/tls/ (for development only).",
      fields: {
        cert: {
          kind: "string",
          nullable: true,
          default: null,
          expect: "a file path",
          accept: nonEmpty,
          description: "Certificate (chain) used for every host without an entry in tls.certs.",
        },
        key: {
          kind: "string",
          nullable: true,
          default: null,
          expect: "a file path",
          accept: nonEmpty,
          description: "Private key for tls.cert.",
        },
        certs: {
          kind: "certMap",
          default: {},
          example: [
            "example.com:",
            "  cert: /etc/letsencrypt/live/example.com/fullchain.pem",
            "  key: /etc/letsencrypt/live/example.com/privkey.pem",
          ],
          description: "Certificate and key per domain, chosen by SNI; overrides tls.cert/tls.key.",
        },
      },
    },
    storage: {
      kind: "section",
      description: "Where state is kept.",
      fields: {
        driver: {
          kind: "enum",
          values: ["sqlite", "postgres"],
          default: "sqlite",
          description:
            "Storage driver: embedded SQLite (one node), or PostgreSQL (production; several nodes may share one database).",
        },
        sqlite: {
          kind: "section",
          description: "Embedded SQLite database.",
          fields: {
            path: {
              kind: "string",
              nullable: true,
              default: null,
              defaultNote: "<dataDir>/hearth.db",
              expect: 'a file path or ":memory:"',
              accept: nonEmpty,
              description: "Database file; null means <dataDir>/hearth.db.",
            },
          },
        },
        postgres: {
          kind: "section",
          description: "PostgreSQL database (storage.driver: postgres). Apply schema migrations with `hearth migrate`; the server also applies them when it starts.",
          fields: {
            url: {
              kind: "string",
              nullable: true,
              default: null,
              expect: "a postgres:// or postgresql:// connection URL",
              accept: postgresUrl,
              passwordInUrl: true,
              description:
                "Connection URL, e.g. postgresql://hearth:secret@db.example.com:5432/hearth?sslmode=require; required with storage.driver: postgres.",
            },
            poolSize: {
              kind: "integer",
              min: 1,
              max: 1000,
              default: 10,
              description: "Connections per server process; timeline writes use up to half of them at once.",
            },
          },
        },
        retention: {
          kind: "section",
          description: "How long the timeline keeps messages (the archive, offline delivery, resends and mobile history are views of it). Undelivered offline messages are never removed.",
          fields: {
            days: {
              kind: "integer", min: 0, max: 100_000, default: 0,
              description: "Messages older than this many days leave the timeline (and so the archive); 0 keeps them forever.",
            },
            unarchivedDays: {
              kind: "integer", min: 0, max: 100_000, default: 7,
              description: "Rows the archiving preferences kept out of the archive still serve offline delivery, resends and device sync; delivered ones older than this many days are removed (0: as archived ones, by storage.retention.days).",
            },
            intervalSeconds: {
              kind: "integer", min: 1, max: 7 * 86_400, default: 3600,
              description: "How often old rows are removed.",
            },
          },
        },
      },
    },
    auth: {
      kind: "section",
      description: "Authentication (SASL, RFC 6120 §6).",
      fields: {
        scramIterations: {
          kind: "integer",
          min: 4096,
          max: 10_000_000,
          default: 4096,
          description:
            "PBKDF2 iterations for newly stored SCRAM credentials (RFC 7677 requires at least 4096).",
        },
        mechanisms: {
          kind: "list",
          default: ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"],
          minItems: 1,
          itemExpect: `one of ${KNOWN_SASL_MECHANISMS.join(", ")}`,
          acceptItem: saslMechanism,
          description: "SASL mechanisms offered, in order of preference.",
        },
        allowPlainInsecure: {
          kind: "boolean",
          default: false,
          description: "Offer PLAIN on connections without TLS (never do this outside tests).",
        },
        sasl2: {
          kind: "boolean",
          default: true,
          description:
            "Offer SASL2 (XEP-0388) with Bind2 (XEP-0386) beside RFC 6120 SASL: login, resource binding, stream management, carbons and client state in one round trip.",
        },
        channelBinding: {
          kind: "boolean",
          default: true,
          description:
            "Offer SCRAM-SHA-1-PLUS and SCRAM-SHA-256-PLUS on TLS connections this process terminates, with tls-exporter (TLS 1.3) and tls-server-end-point bindings (XEP-0440 lists them). Turn off when a proxy in front re-encrypts TLS (clients would bind to the proxy's channel, not this one).",
        },
        fastTokenTtlSeconds: {
          kind: "integer",
          min: 0,
          max: 31_536_000,
          default: 2_592_000,
          description:
            "Lifetime of a FAST token (XEP-0484 over SASL2: HT-SHA-256-NONE, and -EXPR/-ENDP on TLS); 0 = FAST is not offered. Tokens are never stored usable, one per account and user agent, and revoked by a password change.",
        },
        maxFailures: {
          kind: "integer",
          min: 0,
          max: 1_000_000,
          default: 20,
          description:
            "Failed logins from one address (any accounts, every protocol) within failureWindowSeconds before the address is refused (temporary-auth-failure); 0 = no limit. Addresses in exemptNetworks have no such ceiling.",
        },
        maxFailuresPerAccount: {
          kind: "integer",
          min: 0,
          max: 1_000_000,
          default: 5,
          description:
            "Failed logins at one account from one address within failureWindowSeconds before that address is refused for that account (temporary-auth-failure); 0 = no limit. The owner logging in from another address is not affected.",
        },
        failureWindowSeconds: {
          kind: "integer",
          min: 1,
          max: 86_400,
          default: 300,
          description: "Window for counting failed logins; a refusal ends when the failures that caused it age out.",
        },
        failureDelayMs: {
          kind: "integer",
          min: 0,
          max: 60_000,
          default: 1000,
          description:
            "After a failed login at an account from an address, the next attempt of that pair waits this long, doubled for every further failure up to maxFailureDelayMs; 0 = no delay.",
        },
        maxFailureDelayMs: {
          kind: "integer",
          min: 0,
          max: 60_000,
          default: 16_000,
          description: "The longest wait failureDelayMs grows to.",
        },
        exemptNetworks: networks(
          "Networks exempt from the per-address login ceiling (maxFailures) and from the per-address registration limit (modules.register.perIpPerHour), e.g. a trusted office NAT or a reverse proxy; failures per account from them are still counted and delayed.",
        ),
      },
    },
    registration: {
      kind: "section",
      description: "In-band account registration (XEP-0077).",
      fields: {
        policy: {
          kind: "enum",
          values: ["open", "closed", "localhost"],
          default: "localhost",
          description:
            "Who may create accounts: anyone, nobody, or only clients connecting from the local machine.",
        },
        minPasswordLength: {
          kind: "integer",
          min: 1,
          max: 1024,
          default: 6,
          description: "Shortest password accepted for new accounts and password changes.",
        },
      },
    },
    limits: {
      kind: "section",
      description: "Resource limits.",
      fields: {
        maxStanzaBytes: {
          kind: "integer",
          min: 256,
          max: 64 * 1024 * 1024,
          default: 262_144,
          description:
            "Largest stanza accepted, in bytes; larger ones close the stream with <policy-violation/> (RFC 6120 §13.12 asks for at least 10000).",
        },
        maxConnectionsPerIp: {
          kind: "integer",
          min: 0,
          max: 10_000_000,
          default: 64,
          description: "Simultaneous connections from one IP address; 0 = unlimited.",
        },
        maxConnections: {
          kind: "integer",
          min: 0,
          max: 100_000_000,
          default: 0,
          description: "Simultaneous connections in total; 0 = unlimited.",
        },
        stanzasPerSecond: {
          kind: "integer",
          min: 0,
          max: 10_000_000,
          default: 50,
          description: "Sustained stanzas per second per session (token bucket); 0 = unlimited.",
        },
        stanzaBurst: {
          kind: "integer",
          min: 1,
          max: 10_000_000,
          default: 200,
          description: "Stanzas a session may send in a burst above stanzasPerSecond.",
        },
        authTimeoutSeconds: {
          kind: "integer",
          min: 1,
          max: 3600,
          default: 30,
          description: "Close connections that have not authenticated within this time.",
        },
        idleTimeoutSeconds: {
          kind: "integer",
          min: 1,
          max: 604_800,
          default: 300,
          description:
            "Ping a session that has been silent this long (XEP-0199) and close it if no answer comes.",
        },
      },
    },
    offline: {
      kind: "section",
      description: "Messages for users with no online resource (XEP-0160).",
      fields: {
        maxPerUser: {
          kind: "integer",
          min: 0,
          max: 100_000_000,
          default: 1000,
          description: "Most undelivered messages stored per user; 0 = store none.",
        },
      },
    },
    s2s: {
      kind: "section",
      description:
        "Federation with other XMPP servers (server-to-server, RFC 6120). Peers authenticate with SASL EXTERNAL when their certificate validates (XEP-0178), else with Server Dialback (XEP-0220).",
      fields: {
        bind: bind("Address to listen on for server connections."),
        port: port(5269, "Port for server connections (STARTTLS); without it and directTlsPort federation is off."),
        directTlsPort: port(null, "Port for server connections with TLS from the first byte (XEP-0368, ALPN xmpp-server); off unless set (5270 is the usual port), as in Prosody and ejabberd, so that s2s.port: null alone turns federation off."),
        routes: {
          kind: "map",
          default: {},
          keyExpect: "domain names",
          acceptKey: normalizeDomain,
          valueExpect: '"host:port" (STARTTLS) or "tls://host:port" (direct TLS)',
          acceptValue: s2sRoute,
          example: ['example.org: "10.0.0.5:5269"', 'other.example: "tls://xmpp.internal:5270"'],
          description:
            "Where to connect for a remote domain, tried before DNS (_xmpps-server._tcp and _xmpp-server._tcp SRV records, then the domain itself on port 5269, RFC 6120 §3.2, XEP-0368); a tls:// route speaks TLS from the first byte.",
        },
        requireTls: {
          kind: "boolean",
          default: true,
          description: "Require STARTTLS on every server connection, both directions (RFC 6120 §5.1).",
        },
        requireValidCertificates: {
          kind: "boolean",
          default: false,
          description:
            "Accept only peers whose certificate validates for their domain (SASL EXTERNAL); false also allows Server Dialback for the others.",
        },
        caFile: {
          kind: "string",
          nullable: true,
          default: null,
          expect: "a file path",
          accept: nonEmpty,
          description: "PEM bundle of the certificate authorities trusted for peer certificates (instead of Node's bundled roots); null uses those roots.",
        },
        dialbackSecret: {
          kind: "string",
          nullable: true,
          default: null,
          defaultNote: "generated, kept in <dataDir>/s2s-dialback.secret",
          expect: "a string of at least 16 characters",
          accept: (v) => (v.length >= 16 ? v : undefined),
          secret: true,
          description:
            "Secret from which dialback keys (XEP-0185) and channel-bound FAST tokens (XEP-0484) are derived; every node of a cluster needs the same one.",
        },
        allow: {
          kind: "list",
          default: [],
          minItems: 0,
          itemExpect: "a domain name",
          acceptItem: normalizeDomain,
          description: "Federate only with these domains; empty means any domain not in s2s.deny.",
        },
        deny: {
          kind: "list",
          default: [],
          minItems: 0,
          itemExpect: "a domain name",
          acceptItem: normalizeDomain,
          description: "Never federate with these domains.",
        },
        connectTimeoutSeconds: {
          kind: "integer",
          min: 1,
          max: 600,
          default: 15,
          description:
            "Time to connect and authenticate to a remote server; queued stanzas then bounce with remote-server-timeout.",
        },
        idleTimeoutSeconds: {
          kind: "integer",
          min: 1,
          max: 86_400,
          default: 300,
          description: "Close an outgoing server connection that sent nothing for this long.",
        },
        keepaliveSeconds: {
          kind: "integer",
          min: 1,
          max: 3600,
          default: 60,
          description: "Send a whitespace keepalive on a server connection silent for this long (RFC 6120 §4.6.1).",
        },
        maxQueuedStanzas: {
          kind: "integer",
          min: 1,
          max: 1_000_000,
          default: 1000,
          description:
            "Stanzas held per remote domain while its connection is being set up; more bounce with resource-constraint.",
        },
        maxStanzaBytesPreAuth: {
          kind: "integer",
          min: 1024,
          max: 16_777_216,
          default: 16_384,
          description:
            "Largest element a server may send before it has authenticated (dialback, SASL); limits.maxStanzaBytes applies after. Bigger ends the stream with policy-violation.",
        },
        stanzasPerSecond: {
          kind: "integer",
          min: 0,
          max: 10_000_000,
          default: 500,
          description: "Sustained stanzas per second accepted from one incoming server stream (token bucket; a faster peer is read more slowly, nothing is dropped); 0 = unlimited.",
        },
        stanzaBurst: {
          kind: "integer",
          min: 1,
          max: 10_000_000,
          default: 2000,
          description: "Stanzas an incoming server stream may send in a burst above s2s.stanzasPerSecond.",
        },
        maxStreamsPerIp: {
          kind: "integer",
          min: 0,
          max: 1_000_000,
          default: 50,
          description: "Most incoming server connections from one IP address (a large server sends from one address for many domains); more are refused with policy-violation; 0 = unlimited.",
        },
        maxStreamsPerDomain: {
          kind: "integer",
          min: 0,
          max: 1_000_000,
          default: 10,
          description: "Most incoming server streams authenticated for one remote domain at a time; another is refused with policy-violation; 0 = unlimited.",
        },
      },
    },
    components: {
      kind: "section",
      description:
        "External components (XEP-0114, jabber:component:accept): a gateway or bot process connects, proves the shared secret of its domain and then serves that domain.",
      fields: {
        bind: { ...bind("Address to listen on for component connections; keep it on a private interface (the protocol has no TLS)."), default: "127.0.0.1" },
        port: port(null, "Port for component connections (5347 is the usual port); off by default."),
        secrets: {
          kind: "map",
          default: {},
          keyExpect: "domain names (not a served host)",
          acceptKey: normalizeDomain,
          valueExpect: "a shared secret of at least 16 characters",
          acceptValue: (v) => (v.length >= 16 ? v : undefined),
          secret: true,
          example: ['gateway.example.com: "a long random secret"'],
          description:
            "Component domains and their shared secrets. While its component is connected a domain is served by it; when not, stanzas to it get service-unavailable.",
        },
        stanzasPerSecond: {
          kind: "integer",
          min: 0,
          max: 10_000_000,
          default: 1000,
          description: "Sustained stanzas per second read from one component (token bucket; a faster component is read more slowly, nothing is dropped); 0 = unlimited.",
        },
        stanzaBurst: {
          kind: "integer",
          min: 1,
          max: 10_000_000,
          default: 5000,
          description: "Stanzas a component may send in a burst above components.stanzasPerSecond.",
        },
        keepaliveSeconds: {
          kind: "integer",
          min: 1,
          max: 3600,
          default: 60,
          description: "Ping (XEP-0199) a component that sent nothing for this long, so a component whose host died is noticed.",
        },
        pingTimeoutSeconds: {
          kind: "integer",
          min: 1,
          max: 3600,
          default: 30,
          description: "Close a component's stream (connection-timeout) when it sends nothing for this long after a ping.",
        },
      },
    },
    cluster: {
      kind: "section",
      description:
        "Several nodes behind one domain: a shared session directory and node-to-node routing on Redis (see Clustering). Every node must use the same PostgreSQL database.",
      fields: {
        redisUrl: {
          kind: "string",
          nullable: true,
          default: null,
          expect: "a redis:// or rediss:// URL",
          accept: redisUrl,
          passwordInUrl: true,
          description:
            "Redis URL (redis://[user:password@]host:port[/db]); null runs a single node with the in-process session directory.",
        },
        nodeId: {
          kind: "string",
          nullable: true,
          default: null,
          defaultNote: "<host name>-<process id>",
          expect: "letters, digits, '.', '_' or '-'",
          accept: nodeName,
          description:
            "Name of this node in Redis keys and logs; every start adds a random suffix, so a restarted node never inherits the sessions of its previous run.",
        },
        heartbeatSeconds: {
          kind: "integer",
          min: 1,
          max: 3600,
          default: 2,
          description: "How often a node refreshes its liveness key in Redis and checks the other nodes.",
        },
        deadAfterSeconds: {
          kind: "integer",
          min: 2,
          max: 86_400,
          default: 10,
          description:
            "A node silent this long is dead: one survivor sends unavailable presence for its sessions and moves the messages it had not delivered to offline storage. Must exceed heartbeatSeconds.",
        },
      },
    },
    modules: {
      kind: "section",
      description: "Extension modules.",
      fields: {
        disabled: {
          kind: "list",
          default: [],
          minItems: 0,
          itemExpect: "a module name",
          acceptItem: moduleName,
          description: "Names of modules not to load.",
        },
      },
      openEntries: {
        description: "Options for module <name>: a mapping checked against the options the module declares.",
        example: ["<name>:", "  someOption: value"],
      },
    },
  },
};

/** A module as far as the config is concerned: its name and declared options. */
export interface ModuleOptionsDecl {
  name: string;
  options?: OptionsSection<any>;
}

const NO_OPTIONS = (name: string): OptionsSection => ({ kind: "section", description: `Module ${name} (no options).`, fields: {} });

/** The options section of a module; a module that declares none takes none. */
export function optionsSectionOf(module: ModuleOptionsDecl): OptionsSection {
  return module.options ?? NO_OPTIONS(module.name);
}

/**
 * The schema with `modules.<name>` declared for each module: the module options are then validated,
 * defaulted, overridable from the environment and documented like every other key, and a module name
 * no module has is an unknown key.
 */
export function schemaWithModules(modules: readonly ModuleOptionsDecl[]): Section {
  const base = schema.fields.modules as Section;
  const fields: Record<string, SchemaNode> = { ...base.fields };
  for (const m of modules) fields[m.name] = optionsSectionOf(m);
  return { ...schema, fields: { ...schema.fields, modules: { kind: "section", description: base.description, fields } } };
}

// ---------------------------------------------------------------------------------------------
// Checking one value against a leaf

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

export function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") {
    const text = JSON.stringify(value);
    return text.length > 80 ? `${text.slice(0, 77)}..."` : text;
  }
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

export type Style = "yaml" | "env";

/** What a valid value looks like, phrased for YAML or for an environment variable. */
export function expectation(leaf: Leaf, style: Style): string {
  const orNull = style === "env" ? ' or "off"' : " or null";
  switch (leaf.kind) {
    case "string":
      return leaf.expect + (leaf.nullable ? orNull : "");
    case "integer":
    case "number": {
      const what = leaf.kind === "integer" ? "an integer" : "a number";
      const range = leaf.max === Number.MAX_SAFE_INTEGER ? ` of at least ${leaf.min}` : ` ${leaf.min}-${leaf.max}`;
      return what + range + (leaf.nullable ? orNull : "");
    }
    case "boolean":
      return style === "env" ? "true or false (also yes/no, on/off, 1/0)" : "true or false";
    case "enum":
      return `one of ${leaf.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "list":
      return style === "env"
        ? `a comma-separated list, each entry ${leaf.itemExpect}`
        : `a list of entries, each ${leaf.itemExpect}`;
    case "certMap":
      return style === "env"
        ? 'a YAML or JSON mapping like {"example.com": {"cert": "…", "key": "…"}}'
        : "a mapping of domain names to {cert, key}";
    case "map":
      return `${style === "env" ? "a YAML or JSON mapping" : "a mapping"} of ${leaf.keyExpect} to ${leaf.valueExpect}`;
  }
}

function mismatch(leaf: Leaf, value: unknown, style: Style): Checked {
  const got = leaf.kind === "string" && leaf.secret && typeof value === "string" ? "another string (not shown: a secret)" : describeValue(value);
  return { ok: false, problem: `must be ${expectation(leaf, style)}, got ${got}` };
}

/** Validates and normalizes a value for `leaf`; never mutates `value`. */
export function checkLeaf(leaf: Leaf, value: unknown, style: Style = "yaml"): Checked {
  switch (leaf.kind) {
    case "string": {
      if (value === null && leaf.nullable) return { ok: true, value: null };
      if (typeof value !== "string") return mismatch(leaf, value, style);
      const accepted = leaf.accept(value);
      return accepted === undefined ? mismatch(leaf, value, style) : { ok: true, value: accepted };
    }
    case "integer":
    case "number": {
      if (leaf.nullable && (value === null || value === false || value === "off")) {
        return { ok: true, value: null };
      }
      const whole = leaf.kind === "integer" ? Number.isInteger(value) : Number.isFinite(value);
      if (typeof value !== "number" || !whole || value < leaf.min || value > leaf.max) {
        return mismatch(leaf, value, style);
      }
      return { ok: true, value };
    }
    case "boolean":
      return typeof value === "boolean" ? { ok: true, value } : mismatch(leaf, value, style);
    case "enum":
      return typeof value === "string" && leaf.values.includes(value)
        ? { ok: true, value }
        : mismatch(leaf, value, style);
    case "list":
      return checkList(leaf, value, style);
    case "certMap":
      return checkCertMap(leaf, value, style);
    case "map":
      return checkMap(leaf, value, style);
  }
}

function checkMap(leaf: MapLeaf, value: unknown, style: Style): Checked {
  if (value === null) return { ok: true, value: {} };
  if (!isPlainObject(value)) return mismatch(leaf, value, style);
  const out: Record<string, string> = {};
  for (const [rawKey, entry] of Object.entries(value)) {
    const key = leaf.acceptKey(rawKey);
    if (key === undefined) return { ok: false, at: [rawKey], problem: `must be keyed by ${leaf.keyExpect}` };
    const accepted = typeof entry === "string" ? leaf.acceptValue(entry) : undefined;
    if (accepted === undefined) {
      const got = leaf.secret ? (typeof entry === "string" ? "another string (not shown: a secret)" : describeValue(typeof entry === "object" ? entry : typeof entry)) : describeValue(entry);
      return { ok: false, at: [rawKey], problem: `must be ${leaf.valueExpect}, got ${got}` };
    }
    if (out[key] !== undefined) return { ok: false, at: [rawKey], problem: `duplicate entry for ${JSON.stringify(key)}` };
    out[key] = accepted;
  }
  return { ok: true, value: out };
}

function checkList(leaf: ListLeaf, value: unknown, style: Style): Checked {
  if (!Array.isArray(value)) return mismatch(leaf, value, style);
  const out: string[] = [];
  for (const [index, item] of value.entries()) {
    const accepted = typeof item === "string" ? leaf.acceptItem(item) : undefined;
    if (accepted === undefined) {
      return { ok: false, at: [index], problem: `must be ${leaf.itemExpect}, got ${describeValue(item)}` };
    }
    if (out.includes(accepted)) {
      return { ok: false, at: [index], problem: `duplicate entry ${JSON.stringify(accepted)}` };
    }
    out.push(accepted);
  }
  if (out.length < leaf.minItems) {
    return { ok: false, problem: `must have at least ${leaf.minItems} entr${leaf.minItems === 1 ? "y" : "ies"}` };
  }
  return { ok: true, value: out };
}

function checkCertMap(leaf: CertMapLeaf, value: unknown, style: Style): Checked {
  if (value === null) return { ok: true, value: {} };
  if (!isPlainObject(value)) return mismatch(leaf, value, style);
  const out: Record<string, CertPaths> = {};
  for (const [rawDomain, entry] of Object.entries(value)) {
    const domain = normalizeDomain(rawDomain);
    if (domain === undefined) {
      return { ok: false, at: [rawDomain], problem: "must be keyed by a domain name" };
    }
    if (!isPlainObject(entry)) {
      return { ok: false, at: [rawDomain], problem: `must be a mapping with cert and key, got ${describeValue(entry)}` };
    }
    for (const key of Object.keys(entry)) {
      if (key !== "cert" && key !== "key") {
        return { ok: false, at: [rawDomain, key], problem: 'unknown key (expected "cert" and "key")' };
      }
    }
    for (const key of ["cert", "key"] as const) {
      const path = entry[key];
      if (typeof path !== "string" || path.trim() === "") {
        return { ok: false, at: [rawDomain, key], problem: `must be a file path, got ${describeValue(path)}` };
      }
    }
    if (out[domain] !== undefined) {
      return { ok: false, at: [rawDomain], problem: `duplicate entry for ${JSON.stringify(domain)}` };
    }
    out[domain] = { cert: entry.cert as string, key: entry.key as string };
  }
  return { ok: true, value: out };
}

// ---------------------------------------------------------------------------------------------
// Walking the tree

export interface LeafEntry {
  path: string[];
  leaf: Leaf;
}

export function leaves(section: Section = schema, prefix: string[] = []): LeafEntry[] {
  const out: LeafEntry[] = [];
  for (const [key, node] of Object.entries(section.fields)) {
    if (node.kind === "section") out.push(...leaves(node, [...prefix, key]));
    else out.push({ path: [...prefix, key], leaf: node });
  }
  return out;
}

export function sectionAt(path: readonly string[], root: Section = schema): Section | undefined {
  let node: SchemaNode = root;
  for (const key of path) {
    if (node.kind !== "section") return undefined;
    const next: SchemaNode | undefined = node.fields[key];
    if (next === undefined) return undefined;
    node = next;
  }
  return node.kind === "section" ? node : undefined;
}

/** `limits.maxStanzaBytes`, `hosts[1]`, `tls.certs["example.com"].cert`. */
export function formatKeyPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** camelCase key → UPPER_SNAKE environment segment: maxStanzaBytes → MAX_STANZA_BYTES. */
export function envSegment(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

/** UPPER_SNAKE environment segment → camelCase key: MAX_RESULTS → maxResults. */
export function keyFromEnvSegment(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export const ENV_PREFIX = "HEARTH_";

export function envName(path: readonly string[]): string {
  return ENV_PREFIX + path.map(envSegment).join("__");
}

const HIDDEN = "(not shown)";

function hidePassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password === "") return url;
    u.password = HIDDEN;
    return u.toString();
  } catch {
    return HIDDEN;
  }
}

/**
 * A copy of a loaded configuration without the values its schema marks secret (leaves with `secret`,
 * the password part of `passwordInUrl` URLs), for printing: `hearth check-config` output gets pasted
 * into bug reports. Module options are covered when `section` is the schema with the modules.
 */
export function withoutSecrets(config: object, section: Section = schema): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(config)) as Record<string, unknown>;
  for (const { path, leaf } of leaves(section)) {
    let parent: unknown = copy;
    for (const key of path.slice(0, -1)) parent = isPlainObject(parent) ? parent[key] : undefined;
    if (!isPlainObject(parent)) continue;
    const key = path[path.length - 1];
    const value = parent[key];
    if (leaf.kind === "map" && leaf.secret && isPlainObject(value)) {
      parent[key] = Object.fromEntries(Object.keys(value).map((k) => [k, HIDDEN]));
    } else if (leaf.kind === "string" && typeof value === "string") {
      if (leaf.secret) parent[key] = HIDDEN;
      else if (leaf.passwordInUrl) parent[key] = hidePassword(value);
    }
  }
  return copy;
}
