// The HT-SHA-256 family (draft-schmaus-kitten-sasl-ht-09), the token mechanisms of FAST (XEP-0484): one
// message `username NUL HMAC-SHA-256(token, "Initiator" || cb-data)`, answered by
// HMAC-SHA-256(token, "Responder" || cb-data). cb-data is empty for -NONE, the tls-server-end-point data
// (RFC 5929) for -ENDP and the tls-exporter data (RFC 9266) for -EXPR, so a bound token proves nothing on
// another TLS channel.
import { decodeUtf8, prepUsername, SaslError, type ChannelBinding, type SaslMechanism, type SaslStep } from "./scram.js";

export const HT_SHA_256_NONE = "HT-SHA-256-NONE";
export const HT_SHA_256_ENDP = "HT-SHA-256-ENDP";
export const HT_SHA_256_EXPR = "HT-SHA-256-EXPR";

/** The channel-binding type of each HT mechanism (null: unbound). */
export const HT_BINDINGS: ReadonlyMap<string, string | null> = new Map([
  [HT_SHA_256_EXPR, "tls-exporter"],
  [HT_SHA_256_ENDP, "tls-server-end-point"],
  [HT_SHA_256_NONE, null],
]);

/** The HT mechanisms a connection can use, strongest first: the bound ones need their binding type. */
export function htMechanisms(channel: ChannelBinding | null): string[] {
  return [...HT_BINDINGS].filter(([, type]) => type === null || channel?.types.includes(type)).map(([m]) => m);
}

/** The cb-data `mechanism` binds to on `channel`: empty for -NONE, null when the channel cannot give it. */
export function htBindingData(mechanism: string, channel: ChannelBinding | null): Buffer | null {
  const type = HT_BINDINGS.get(mechanism);
  if (type === undefined) return null;
  if (type === null) return Buffer.alloc(0);
  return channel?.types.includes(type) ? channel.data(type) : null;
}

/**
 * Checks the client's HMAC for `username` over `cbData` (the channel's binding data, empty for -NONE);
 * resolves to the server's answer, or null when it does not match.
 */
export type TokenCheck = (username: string, initiator: Buffer, cbData: Buffer) => Promise<Buffer | null>;

const HMAC_BYTES = 32;
const MAX_USERNAME_BYTES = 1024;

export class HtMechanism implements SaslMechanism {
  #used = false;

  constructor(readonly name: string, private readonly check: TokenCheck, private readonly cbData: Buffer) {}

  async step(input: Buffer): Promise<SaslStep> {
    if (this.#used) throw new SaslError("malformed-request", "unexpected SASL step");
    this.#used = true;
    // draft-schmaus-kitten-sasl-ht §3.1: the initiator message is the only client message.
    const nul = input.indexOf(0);
    if (nul < 1 || nul > MAX_USERNAME_BYTES || input.length - nul - 1 !== HMAC_BYTES) {
      throw new SaslError("malformed-request", "expected username NUL HMAC-SHA-256");
    }
    const username = prepUsername(decodeUtf8(input.subarray(0, nul)));
    if (username === "") throw new SaslError("malformed-request", "empty username");
    let responder: Buffer | null;
    try {
      responder = await this.check(username, input.subarray(nul + 1), this.cbData);
    } catch (err) {
      if (err instanceof SaslError) throw err;
      throw new SaslError("temporary-auth-failure", "token lookup failed");
    }
    if (responder === null) throw new SaslError("not-authorized", "the token is unknown, expired or revoked");
    return { kind: "success", username, data: responder };
  }
}
