import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import type { HookBuses } from "../events/hooks.js";
import type { Router } from "../router/router.js";
import type { SessionRegistry } from "../sessions/registry.js";
import type { Store } from "../storage/types.js";
import type { LoginService } from "../auth/login.js";
import type { C2sSession } from "./session.js";

/** What every client stream shares. */
export interface C2sContext {
  readonly config: Config;
  readonly log: Logger;
  readonly logStanzas: boolean;
  readonly hooks: HookBuses;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  readonly store: Store;
  /** Credential lookup and the failure throttle shared with every protocol. */
  readonly login: LoginService;
  /** Every open stream, for the shared timeout sweep. */
  readonly tracker: Set<C2sSession>;
  /** Other WebSocket endpoints on the HTTP port, by path (ServerContext.httpUpgrades). */
  /** Plain HTTP requests the operations endpoints (src/ops) answer; false lets the listener answer 404. */
  readonly httpRequest?: (req: import("node:http").IncomingMessage, res: import("node:http").ServerResponse) => boolean;
  readonly httpUpgrades: ReadonlyMap<string, (req: import("node:http").IncomingMessage, socket: import("node:stream").Duplex, head: Buffer) => void>;
}
