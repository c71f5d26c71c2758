import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import type { HookBuses } from "../events/hooks.js";
import type { Router } from "../router/router.js";
import type { S2sTls } from "./certs.js";
import type { DialbackAnswer } from "./outbound.js";
import type { InboundStream } from "./inbound.js";

/** What every server stream shares. */
export interface S2sContext {
  readonly config: Config;
  readonly log: Logger;
  readonly hooks: HookBuses;
  readonly router: Router;
  readonly tls: S2sTls;
  readonly secret: string;
  isServed(domain: string): boolean;
  /** Whether policy (s2s.allow / s2s.deny) lets us federate with `domain`. */
  allowed(domain: string): boolean;
  /** The incoming streams open now (for the per-domain stream limit). */
  incomingStreams(): InboundStream[];
  /** Asks the authoritative server of `remote` whether `key` is its dialback key for stream `id` (XEP-0220 §2.1.3). */
  verifyKey(local: string, remote: string, id: string, key: string): Promise<DialbackAnswer>;
}
