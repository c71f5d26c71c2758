// Stanzas in from and out to local client sessions (c2s and mobile), by kind: plain integers the hot
// path bumps and the metrics read when scraped (src/ops/metrics.ts), so counting costs no lookup.
export interface StanzaCounts { message: number; presence: number; iq: number }

export class StanzaTraffic {
  readonly in: StanzaCounts = { message: 0, presence: 0, iq: 0 };
  readonly out: StanzaCounts = { message: 0, presence: 0, iq: 0 };

  received(name: string): void {
    if (name === "message") this.in.message++;
    else if (name === "presence") this.in.presence++;
    else if (name === "iq") this.in.iq++;
  }

  sent(name: string): void {
    if (name === "message") this.out.message++;
    else if (name === "presence") this.out.presence++;
    else if (name === "iq") this.out.iq++;
  }
}
