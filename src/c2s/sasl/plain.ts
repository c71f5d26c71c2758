// PLAIN (RFC 4616), checked against the stored SCRAM credentials with checkPassword().
import {
  checkAuthzid,
  checkPassword,
  decodeUtf8,
  prepUsername,
  SaslError,
  type CredentialLookup,
  type SaslMechanism,
  type SaslStep,
} from "./scram.js";

export interface PlainOptions {
  /** Iteration count of the dummy derivation run for unknown users, so they cost the same time. */
  unknownUserIterations?: number;
}

const DEFAULT_UNKNOWN_ITERATIONS = 4096;
const MAX_MESSAGE_BYTES = 8192;

export class PlainMechanism implements SaslMechanism {
  readonly name = "PLAIN";
  #state: "initial" | "busy" | "done" = "initial";
  #emptyChallengeSent = false;

  constructor(
    private readonly lookup: CredentialLookup,
    private readonly opts: PlainOptions = {},
  ) {}

  async step(input: Buffer): Promise<SaslStep> {
    if (this.#state !== "initial") throw new SaslError("malformed-request", "unexpected SASL step");
    if (input.length === 0 && !this.#emptyChallengeSent) {
      // RFC 6120 §6.4.2: no initial response, so the server sends an empty challenge.
      this.#emptyChallengeSent = true;
      return { kind: "challenge", data: Buffer.alloc(0) };
    }
    this.#state = "busy";
    try {
      return await this.#authenticate(input);
    } finally {
      this.#state = "done";
    }
  }

  // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd
  async #authenticate(input: Buffer): Promise<SaslStep> {
    if (input.length > MAX_MESSAGE_BYTES) throw new SaslError("malformed-request", "PLAIN message too long");
    const parts = decodeUtf8(input).split("\0");
    if (parts.length !== 3) throw new SaslError("malformed-request", "PLAIN message must have three fields");
    const [authzid, authcid, password] = parts;
    if (authcid === "" || password === "") throw new SaslError("malformed-request", "empty authcid or password");
    // RFC 4616 §2: authcid and passwd are prepared with SASLprep (RFC 4013).
    const username = prepUsername(authcid);
    if (username === "") throw new SaslError("malformed-request", "empty username");
    const checkedAuthzid = checkAuthzid(authzid, username);

    let creds;
    try {
      creds = await this.lookup(username);
    } catch (err) {
      if (err instanceof SaslError) throw err;
      throw new SaslError("temporary-auth-failure", "credential lookup failed");
    }
    const ok = await checkPassword(creds, username, password, this.opts.unknownUserIterations ?? DEFAULT_UNKNOWN_ITERATIONS);
    if (!ok) throw new SaslError("not-authorized");
    const step: Extract<SaslStep, { kind: "success" }> = { kind: "success", username };
    if (checkedAuthzid !== undefined) step.authzid = checkedAuthzid;
    return step;
  }
}
