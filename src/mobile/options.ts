// `modules.mobile` in the config: every option has a default, and a bad value names itself.
import { bind, httpPath, moduleOptions, type OptionsOf } from "../config/schema.js";

const seconds = (def: number, description: string) =>
  ({ kind: "number", min: 0.05, max: 86_400, default: def, description }) as const;
const longSeconds = (def: number, description: string) =>
  ({ kind: "integer", min: 0, max: 10 * 365 * 86_400, default: def, description }) as const;
const devices = (def: number, description: string) =>
  ({ kind: "integer", min: 0, max: 1000, default: def, description }) as const;
const perSecond = (def: number, description: string) =>
  ({ kind: "integer", min: 0, max: 1_000_000, default: def, description }) as const;

export const mobileOptions = moduleOptions(
  "The mobile adapter: protobuf over WebSocket (schemas/proto).",
  {
    port: {
      kind: "integer", min: 0, max: 65535, nullable: true, default: null,
      description: "Port of the adapter's own WebSocket listener; null: mounted at path on the server's HTTP port (http.port). 0 picks a free port (for tests).",
    },
    bind: bind("Address of the adapter's own listener (with port)."),
    path: {
      kind: "string",
      default: "/mobile",
      expect: 'a URL path starting with "/"',
      accept: httpPath,
      description: "URL path of the mobile WebSocket endpoint.",
    },
    maxFrameBytes: { kind: "integer", min: 1024, max: 16 * 1024 * 1024, default: 65_536, description: "Largest frame accepted, in bytes." },
    heartbeatSeconds: seconds(30, "Heartbeat interval asked of a foreground client."),
    heartbeatTimeoutMultiplier: {
      kind: "number", min: 1, max: 100, default: 3,
      description: "A connection silent for heartbeatSeconds × this is closed.",
    },
    backgroundHeartbeatSeconds: seconds(120, "Heartbeat interval asked of a client in the background."),
    loginTimeoutSeconds: seconds(15, "A connection that has not logged in by then is closed."),
    requestsPerSecond: perSecond(50, "Requests per second per connection (token bucket); 0: no limit. Ping and Ack are not counted."),
    requestBurst: perSecond(200, "Requests a connection may send in a burst above requestsPerSecond."),
    syncBatch: { kind: "integer", min: 1, max: 5000, default: 200, description: "Messages per MessagePush frame during the login sync." },
    syncWindow: {
      kind: "integer", min: 1, max: 1_000_000, default: 2000,
      description: "The login sync pauses while this many pushed messages are not acknowledged.",
    },
    devicesPerClass: {
      kind: "section",
      description: "Concurrent sessions per platform class (schemas/proto session.proto Platform); 0: no limit.",
      fields: {
        phone: devices(1, "Phones."),
        tablet: devices(1, "Tablets."),
        desktop: devices(1, "Desktop apps."),
        web: devices(3, "Web apps."),
      },
    },
    tokenTtlSeconds: longSeconds(30 * 86_400, "Lifetime of a device token when the client asks for none."),
    maxTokenTtlSeconds: longSeconds(365 * 86_400, "Longest device token lifetime a client may ask for."),
    maxPendingOutputBytes: {
      kind: "integer", min: 65_536, max: 1024 * 1024 * 1024, default: 8 * 1024 * 1024,
      description: "A connection whose unsent output exceeds this is closed (a slow consumer).",
    },
    groupService: {
      kind: "string",
      default: "",
      expect: "a MUC service domain, or empty",
      accept: (v) => v,
      description: 'The MUC service used for groups; "" picks the first MUC component found.',
    },
  },
  (o) => (o.tokenTtlSeconds > o.maxTokenTtlSeconds ? { key: "tokenTtlSeconds", problem: "must not exceed maxTokenTtlSeconds" } : undefined),
);

export type MobileOptions = OptionsOf<typeof mobileOptions>;
export type DeviceLimits = MobileOptions["devicesPerClass"];
