// HT-SHA-256-NONE (draft-schmaus-kitten-sasl-ht-09), the token mechanism of FAST (XEP-0484): one message
// `username NUL HMAC-SHA-256(token, "Initiator")`, answered by HMAC-SHA-256(token, "Responder").
import { decodeUtf8, prepUsername, SaslError, type SaslMechanism, type SaslStep } from "./scram.js";

export const HT_SHA_256_NONE = "HT-SHA-256-NONE";

/** Checks the client's HMAC for `username`; resolves to the server's answer, or null when it does not match. */
export type TokenCheck = (username: string, initiator: Buffer) => Promise<Buffer | null>;

const HMAC_BYTES = 32;
const MAX_USERNAME_BYTES = 1024;

export class HtMechanism implements SaslMechanism {
  readonly name = HT_SHA_256_NONE;
  #used = false;

  constructor(private readonly check: TokenCheck) {}

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
      responder = await this.check(username, input.subarray(nul + 1));
    } catch (err) {
      if (err instanceof SaslError) throw err;
      throw new SaslError("temporary-auth-failure", "token lookup failed");
    }
    if (responder === null) throw new SaslError("not-authorized", "the token is unknown, expired or revoked");
    return { kind: "success", username, data: responder };
  }
}
