// When a peer that does not read its output is closed (c2s.maxOutboundBytes, modules.mobile
// maxPendingOutputBytes). Checked once per tick of output, after it was offered to the kernel.

/** A peer that took nothing for this long while over the limit is taken for one that stopped reading. */
const STALL_MS = 1000;
/** However steadily it reads, a peer never has more than this many times the limit queued. */
const CEILING_FACTOR = 8;

export class OutboundGuard {
  private written = 0;
  private flushed = 0;
  private overSince = 0;

  constructor(private readonly limit: number) {}

  /** Counts output handed to the connection (in the units its backlog is measured in). */
  wrote(n: number): void {
    this.written += n;
  }

  /**
   * Whether to close, given what is still queued. Over the limit, a peer that keeps reading may work
   * through a burst (an offline batch, an archive page) up to the ceiling; one that read nothing for
   * STALL_MS is closed.
   */
  exceeded(queued: number, now = Date.now()): boolean {
    const flushed = this.written - queued;
    if (queued <= this.limit) {
      this.flushed = flushed;
      this.overSince = 0;
      return false;
    }
    // The stall clock runs from the later of: going over the limit, the peer's last progress.
    if (this.overSince === 0 || flushed > this.flushed) {
      this.overSince = now;
      this.flushed = flushed;
    }
    return queued > this.limit * CEILING_FACTOR || now - this.overSince > STALL_MS;
  }
}
