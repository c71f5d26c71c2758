// One authentication attempt of a client stream, the same for RFC 6120 SASL and SASL2 (XEP-0388): the
// address gate of the failure throttle, the offered-mechanism policy (PLAIN only over TLS), the mechanism's
// steps, and the count of the outcome through the one login path (src/auth/login.ts).
import { nodeprep } from "../../jid/jid.js";
import { AccountDisabled, type LoginService, type LoginThrottled } from "../../auth/login.js";
import type { Config } from "../../config/config.js";
import { createMechanism, offeredMechanisms, SaslError, type SaslCondition, type SaslMechanism } from "./index.js";
import { HtMechanism, HT_BINDINGS, htBindingData, type TokenCheck } from "./ht.js";
import { downgradeProtectionInput } from "./channel-binding.js";
import type { ChannelBinding } from "./scram.js";

export interface SaslFailure { kind: "failure"; condition: SaslCondition; text?: string }
export type SaslOutcome = { kind: "challenge"; data: Buffer } | { kind: "success"; user: string; data?: Buffer } | SaslFailure;

export interface AttemptStream {
  readonly remoteAddress: string;
  readonly host: string;
  readonly secure: boolean;
  /** The TLS channel when it can bind and auth.channelBinding is on (SCRAM-*-PLUS). */
  readonly channel: ChannelBinding | null;
}

/** The password mechanisms this stream offers (the same list for SASL and SASL2). */
export function streamMechanisms(auth: Config["auth"], stream: Pick<AttemptStream, "secure" | "channel">): string[] {
  return offeredMechanisms({ secure: stream.secure, allowPlainInsecure: auth.allowPlainInsecure, enabled: auth.mechanisms, channel: stream.channel });
}

export class SaslAttempt {
  /** The localpart the client named, once it did (for counting a failure against the pair). */
  private tried: string | null = null;
  private constructor(readonly mechanism: SaslMechanism, private readonly login: LoginService, private readonly stream: AttemptStream,
    /** The mechanism's SASL name, for the login counts by mechanism. */
    readonly name: string) {}

  /**
   * Starts an attempt, or tells why not. `tokens`: the FAST token check of this stream (SASL2 only), which
   * makes the token mechanism available.
   */
  static start(login: LoginService, auth: Config["auth"], stream: AttemptStream, mech: string, tokens?: (tried: (user: string) => void) => TokenCheck): SaslAttempt | SaslFailure {
    try {
      login.admitAddress(stream.remoteAddress);
    } catch (err) {
      // RFC 6120 §6.5.13: the address is refused for now, whatever the credentials.
      return { kind: "failure", condition: "temporary-auth-failure", text: (err as LoginThrottled).message };
    }
    let attempt: SaslAttempt;
    if (HT_BINDINGS.has(mech) && tokens) {
      // -ENDP and -EXPR only on a TLS channel that gives their binding data (XEP-0484 with XEP-0440).
      const cb = htBindingData(mech, stream.channel);
      if (cb === null) return { kind: "failure", condition: "invalid-mechanism", text: `${mech} needs channel binding this connection does not offer` };
      attempt = new SaslAttempt(new HtMechanism(mech, tokens((user) => { attempt.tried = user; }), cb), login, stream, mech);
      return attempt;
    }
    const offered = streamMechanisms(auth, stream);
    if (!offered.includes(mech)) {
      return { kind: "failure", condition: mech === "PLAIN" && !stream.secure ? "encryption-required" : "invalid-mechanism" };
    }
    try {
      const lookup = login.saslLookup(stream.remoteAddress, stream.host, (user) => { attempt.tried = user; });
      attempt = new SaslAttempt(createMechanism(mech, lookup, {
        secure: stream.secure, allowPlainInsecure: auth.allowPlainInsecure, enabled: auth.mechanisms, unknownUserIterations: auth.scramIterations,
        channel: stream.channel, downgradeProtection: downgradeProtectionInput(offered, stream.channel),
      }), login, stream, mech);
      return attempt;
    } catch (err) {
      return { kind: "failure", condition: err instanceof SaslError ? err.condition : "invalid-mechanism" };
    }
  }

  /** One step; a success or a wrong credential is counted by the throttle. Never rejects. */
  async step(input: Buffer): Promise<SaslOutcome> {
    try {
      const step = await this.mechanism.step(input);
      if (step.kind === "challenge") return step;
      let user: string;
      try { user = nodeprep(step.username); } catch { return { kind: "failure", condition: "not-authorized" }; }
      // RFC 6120 §6.5.1: a disabled account is refused after its credentials were proven (every mechanism,
      // FAST tokens included), so a wrong guess does not learn that it is disabled.
      try {
        await this.login.checkEnabled(this.stream.remoteAddress, this.stream.host, user, this.name);
      } catch (err) {
        if (err instanceof AccountDisabled) return { kind: "failure", condition: "account-disabled", text: err.message };
        throw err;
      }
      this.login.succeeded(this.stream.remoteAddress, `${user}@${this.stream.host}`, this.name);
      return { kind: "success", user, data: step.data };
    } catch (err) {
      if (!(err instanceof SaslError)) throw err;
      if (err.condition === "not-authorized") {
        const user = this.tried;
        this.login.failed(this.stream.remoteAddress, user === null ? null : `${user}@${this.stream.host}`, this.name);
      }
      return { kind: "failure", condition: err.condition, text: err.message === err.condition ? undefined : err.message };
    }
  }
}
