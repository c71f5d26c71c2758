// The push webhook for mobile-protocol apps: one JSON POST per event, signed with HMAC-SHA256 over the exact
// body with the shared secret, retried with exponential backoff; an event that fails every try is logged
// as a dead letter (the message itself is in the user's timeline either way).
import { createHmac } from "node:crypto";
import type { Logger } from "../../src/log.js";

export interface WebhookOptions {
  url: string;
  secret: string;
  attempts: number;
  backoffMs: number;
  timeoutMs: number;
}

export const SIGNATURE_HEADER = "x-hearth-signature";

/** `sha256=<hex>` of `body` under `secret`: what a receiver recomputes and compares. */
export function signature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

/** Events waiting for a retry, at most: beyond it new events are dead letters at once (a dead gateway must not eat memory). */
const MAX_PENDING = 10_000;

export class Webhook {
  private readonly timers = new Set<NodeJS.Timeout>();
  private pending = 0;
  private stopped = false;

  constructor(private readonly o: WebhookOptions, private readonly log: Logger) {}

  post(event: Record<string, unknown>): void {
    const body = JSON.stringify(event);
    if (this.pending >= MAX_PENDING) {
      this.log.error({ webhook: this.o.url, event: body, attempts: 0 }, "push webhook: dead letter (too many events waiting)");
      return;
    }
    this.pending++;
    void this.attempt(body, 1);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private async attempt(body: string, n: number): Promise<void> {
    if (this.stopped) return;
    let problem: string;
    try {
      const res = await fetch(this.o.url, {
        method: "POST",
        headers: { "content-type": "application/json", [SIGNATURE_HEADER]: signature(this.o.secret, body) },
        body,
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) { this.pending--; return; }
      problem = `HTTP ${res.status}`;
    } catch (err) {
      problem = (err as Error).message;
    }
    if (n >= this.o.attempts) {
      this.pending--;
      this.log.error({ webhook: this.o.url, event: body, attempts: n, problem }, "push webhook: dead letter");
      return;
    }
    this.log.debug({ webhook: this.o.url, attempt: n, problem }, "push webhook: retrying");
    const t = setTimeout(() => { this.timers.delete(t); void this.attempt(body, n + 1); }, this.o.backoffMs * 2 ** (n - 1));
    t.unref();
    this.timers.add(t);
  }
}
