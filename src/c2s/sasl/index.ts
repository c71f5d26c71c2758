// SASL for client streams (RFC 6120 §6): which mechanisms to offer and one state machine per attempt.
import { PlainMechanism } from "./plain.js";
import { decodeBase64Strict, SaslError, ScramMechanism, type ChannelBinding, type CredentialLookup, type SaslMechanism } from "./scram.js";

export {
  checkPassword,
  deriveCredentials,
  prepPassword,
  prepUsername,
  SaslError,
  verifyPassword,
  type ChannelBinding,
  type CredentialLookup,
  type SaslCondition,
  type SaslMechanism,
  type SaslStep,
  type ScramCredentials,
  type ScramHash,
  type StoredCredentials,
} from "./scram.js";

export interface OfferOptions {
  /** The stream is TLS-protected. */
  secure: boolean;
  /** Offer PLAIN without TLS (tests, loopback deployments). */
  allowPlainInsecure?: boolean;
  /** Restricts the mechanisms to these names (a -PLUS variant follows its base mechanism). */
  enabled?: string[];
  /** The stream's TLS channel when it can bind: SCRAM-*-PLUS are offered (RFC 5802 §6). */
  channel?: ChannelBinding | null;
}

export interface MechanismOptions extends OfferOptions {
  /** SCRAM server nonce; tests only. */
  nonce?: string;
  /** Iteration count shown (SCRAM) or spent (PLAIN) for unknown users; match the registration count. */
  unknownUserIterations?: number;
  /** XEP-0474 downgrade protection: the string whose hash SCRAM puts in server-first-message. */
  downgradeProtection?: string;
}

/** Strongest first; the order of <mechanisms/> expresses preference (RFC 6120 §6.3.3). */
const ALL_MECHANISMS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"] as const;
const PLUS = "-PLUS";

export function offeredMechanisms(opts: OfferOptions): string[] {
  return ALL_MECHANISMS.filter((name) => isOffered(name, opts));
}

function isOffered(name: string, opts: OfferOptions): boolean {
  const plus = name.endsWith(PLUS);
  if (plus && !opts.channel?.types.length) return false;
  const base = plus ? name.slice(0, -PLUS.length) : name;
  if (opts.enabled && !opts.enabled.includes(base)) return false;
  // RFC 4616 §6: PLAIN sends the password in the clear, so it needs TLS.
  if (name === "PLAIN" && !opts.secure && !opts.allowPlainInsecure) return false;
  return true;
}

/** Throws SaslError: invalid-mechanism for unknown or disabled names, encryption-required for PLAIN without TLS. */
export function createMechanism(name: string, lookup: CredentialLookup, opts: MechanismOptions): SaslMechanism {
  const plus = name.endsWith(PLUS);
  const base = plus ? name.slice(0, -PLUS.length) : name;
  if (!(ALL_MECHANISMS as readonly string[]).includes(name) || (opts.enabled && !opts.enabled.includes(base))) {
    throw new SaslError("invalid-mechanism", `mechanism ${name} is not supported`);
  }
  if (!isOffered(name, opts)) {
    // RFC 6120 §6.5.4 (PLAIN); a -PLUS variant on a stream that cannot bind is no mechanism of it.
    if (plus) throw new SaslError("invalid-mechanism", `${name} needs a TLS channel that can bind`);
    throw new SaslError("encryption-required", `${name} requires TLS`);
  }
  const { unknownUserIterations, downgradeProtection } = opts;
  const scram = { nonce: opts.nonce, unknownUserIterations, plus, channel: opts.channel, downgradeProtection };
  switch (base) {
    case "SCRAM-SHA-256":
      return new ScramMechanism("SHA-256", lookup, scram);
    case "SCRAM-SHA-1":
      return new ScramMechanism("SHA-1", lookup, scram);
    default:
      return new PlainMechanism(lookup, { unknownUserIterations });
  }
}

/**
 * Text content of <auth/>/<response/> to bytes: "=" is a present but empty response
 * (RFC 6120 §6.4.2); anything but padded base64 is incorrect-encoding (RFC 6120 §6.5.5).
 */
export function decodeSaslData(text: string): Buffer {
  const t = text.trim();
  if (t === "" || t === "=") return Buffer.alloc(0);
  return decodeBase64Strict(t);
}

/** Bytes to element text; empty data is "" (an empty element). */
export function encodeSaslData(data: Buffer | undefined): string {
  return data && data.length > 0 ? data.toString("base64") : "";
}
