// A session handles one inbound stanza or request at a time (DESIGN.md): while a handler awaits, what
// arrives waits in order, and reading from the peer pauses once too much waits, so a fast sender is held
// by TCP flow control rather than by the server's memory. Shared by c2s and mobile sessions.
export interface Flow { pause(): void; resume(): void }

/** How many inbound items may wait behind a busy handler before reading pauses. */
export const MAX_WAITING = 64;

export class Backpressure {
  private paused = false;

  /** `flow` is asked each time: a resumed session reads from a new connection. */
  constructor(private readonly flow: () => Flow) {}

  /** `n` items wait now: pause reading when that is too many. */
  waiting(n: number): void {
    if (n >= MAX_WAITING) this.hold();
  }

  hold(): void {
    if (this.paused) return;
    this.paused = true;
    this.flow().pause();
  }

  /** Nothing waits any more: read again. */
  release(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flow().resume();
  }

  /** A new connection under the session starts out reading. */
  reset(): void {
    this.paused = false;
  }
}
