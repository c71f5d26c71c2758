// `modules.mobile` in the config: every option has a default, and a bad value names itself.
export interface DeviceLimits {
  /** Concurrent sessions per platform class (schemas/proto session.proto `Platform`); 0: no limit. */
  phone: number;
  tablet: number;
  desktop: number;
  web: number;
}

export interface MobileOptions {
  /** The adapter's own WebSocket listener; null (default): mounted at `path` on the server's HTTP port (http.port). */
  port: number | null;
  bind: string;
  path: string;
  maxFrameBytes: number;
  heartbeatSeconds: number;
  /** A connection silent for heartbeat × this is closed. */
  heartbeatTimeoutMultiplier: number;
  backgroundHeartbeatSeconds: number;
  /** A connection that has not logged in by then is closed. */
  loginTimeoutSeconds: number;
  /** Token bucket per connection; 0: no limit. Ping and Ack are not counted. */
  requestsPerSecond: number;
  requestBurst: number;
  recallWindowSeconds: number;
  /** Messages per MessagePush frame during the login sync. */
  syncBatch: number;
  /** The login sync pauses while this many pushed messages are not acknowledged. */
  syncWindow: number;
  devicesPerClass: DeviceLimits;
  tokenTtlSeconds: number;
  maxTokenTtlSeconds: number;
  /** A connection whose unsent output exceeds this is closed (a slow consumer). */
  maxPendingOutputBytes: number;
  /** The MUC service used for groups; "" picks the first MUC component found. */
  groupService: string;
}

export const DEFAULT_OPTIONS: MobileOptions = {
  port: null,
  bind: "0.0.0.0",
  path: "/mobile",
  maxFrameBytes: 65_536,
  heartbeatSeconds: 30,
  heartbeatTimeoutMultiplier: 3,
  backgroundHeartbeatSeconds: 120,
  loginTimeoutSeconds: 15,
  requestsPerSecond: 50,
  requestBurst: 200,
  recallWindowSeconds: 120,
  syncBatch: 200,
  syncWindow: 2000,
  devicesPerClass: { phone: 1, tablet: 1, desktop: 1, web: 3 },
  tokenTtlSeconds: 30 * 86_400,
  maxTokenTtlSeconds: 365 * 86_400,
  maxPendingOutputBytes: 8 * 1024 * 1024,
  groupService: "",
};

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function parseMobileOptions(raw: unknown): MobileOptions {
  if (raw === undefined || raw === null) return structuredClone(DEFAULT_OPTIONS);
  if (!isObject(raw)) throw new Error("must be a mapping of options");
  const out = structuredClone(DEFAULT_OPTIONS) as unknown as Record<string, unknown>;
  const num = (key: string, v: unknown, min: number, max: number, integer = true): number => {
    if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      throw new Error(`${key}: must be ${integer ? "an integer" : "a number"} from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  for (const [key, v] of Object.entries(raw)) {
    switch (key) {
      case "port":
        out.port = v === null ? null : num(key, v, 0, 65535);
        break;
      case "bind":
      case "path":
      case "groupService":
        if (typeof v !== "string") throw new Error(`${key}: must be a string`);
        if (key === "path" && !v.startsWith("/")) throw new Error(`path: must start with "/"`);
        out[key] = v;
        break;
      case "heartbeatSeconds":
      case "backgroundHeartbeatSeconds":
      case "loginTimeoutSeconds":
        out[key] = num(key, v, 0.05, 86_400, false);
        break;
      case "heartbeatTimeoutMultiplier":
        out[key] = num(key, v, 1, 100, false);
        break;
      case "maxFrameBytes":
        out[key] = num(key, v, 1024, 16 * 1024 * 1024);
        break;
      case "requestsPerSecond":
      case "requestBurst":
        out[key] = num(key, v, 0, 1_000_000);
        break;
      case "recallWindowSeconds":
      case "tokenTtlSeconds":
      case "maxTokenTtlSeconds":
        out[key] = num(key, v, 0, 10 * 365 * 86_400);
        break;
      case "syncBatch":
        out[key] = num(key, v, 1, 5000);
        break;
      case "syncWindow":
        out[key] = num(key, v, 1, 1_000_000);
        break;
      case "maxPendingOutputBytes":
        out[key] = num(key, v, 65_536, 1024 * 1024 * 1024);
        break;
      case "devicesPerClass": {
        if (!isObject(v)) throw new Error("devicesPerClass: must be a mapping of phone, tablet, desktop, web");
        const limits = out.devicesPerClass as Record<string, number>;
        for (const [cls, n] of Object.entries(v)) {
          if (!Object.hasOwn(limits, cls)) throw new Error(`devicesPerClass.${cls}: unknown class (phone, tablet, desktop, web)`);
          limits[cls] = num(`devicesPerClass.${cls}`, n, 0, 1000);
        }
        break;
      }
      default:
        throw new Error(`unknown option "${key}" (known: ${Object.keys(DEFAULT_OPTIONS).join(", ")})`);
    }
  }
  const opts = out as unknown as MobileOptions;
  if (opts.tokenTtlSeconds > opts.maxTokenTtlSeconds) throw new Error("tokenTtlSeconds: must not exceed maxTokenTtlSeconds");
  return opts;
}
