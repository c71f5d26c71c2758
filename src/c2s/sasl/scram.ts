// SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), the stored-credential helpers shared with
// PLAIN, and the contract every mechanism implements (this file is the leaf the others import).
//
// Usernames: the mechanisms hand the lookup (and return in `success`) the username after
// saslname decoding and SASLprep (RFC 5802 §5.1), not case-folded. Turning it into a localpart is
// the caller's JID preparation: nodeprep() folds case, and a lookup keyed by localpart applies it
// itself (returning null on JidError).
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { randomString } from "../random.js";
import { createRequire } from "node:module";
import { promisify } from "node:util";
import { JidError, nodeprep } from "../../jid/jid.js";

// `saslprep` is CommonJS (`module.exports = saslprep`) and ships no type declarations.
const require = createRequire(import.meta.url);
const saslprepImpl = require("saslprep") as (input: string, opts?: { allowUnassigned?: boolean }) => string;

const pbkdf2Async = promisify(pbkdf2);

// ---- contract ----

/** RFC 6120 §6.5 */
export type SaslCondition =
  | "aborted"
  | "account-disabled"
  | "credentials-expired"
  | "encryption-required"
  | "incorrect-encoding"
  | "invalid-authzid"
  | "invalid-mechanism"
  | "malformed-request"
  | "mechanism-too-weak"
  | "not-authorized"
  | "temporary-auth-failure";

export class SaslError extends Error {
  override readonly name = "SaslError";
  constructor(
    readonly condition: SaslCondition,
    message?: string,
  ) {
    super(message ?? condition);
  }
}

export type SaslStep = { kind: "challenge"; data: Buffer } | { kind: "success"; data?: Buffer; username: string; authzid?: string };

/**
 * One instance per authentication attempt. step() throws SaslError on failure; after a failure or
 * a success every further step fails with malformed-request. An empty first input (the client sent
 * no initial response) is answered once with an empty challenge (RFC 6120 §6.4.2).
 */
export interface SaslMechanism {
  readonly name: string;
  step(input: Buffer): Promise<SaslStep>;
}

export type CredentialLookup = (username: string) => Promise<StoredCredentials | null>;

// ---- stored credentials ----

export type ScramHash = "SHA-1" | "SHA-256";

export interface ScramCredentials {
  salt: string; // base64
  iterations: number;
  storedKey: string; // base64
  serverKey: string; // base64
}

export type StoredCredentials = Partial<Record<ScramHash, ScramCredentials>>;

const HASHES: Record<ScramHash, { algorithm: "sha1" | "sha256"; size: number }> = {
  "SHA-1": { algorithm: "sha1", size: 20 },
  "SHA-256": { algorithm: "sha256", size: 32 },
};

/** Strongest first. */
export const SCRAM_HASHES: readonly ScramHash[] = ["SHA-256", "SHA-1"];

const SALT_BYTES = 16;

/**
 * Printable ASCII is its own SASLprep (RFC 4013 §2): nothing in it is mapped, NFKC leaves it as it is, none
 * of it is prohibited and none of it is right-to-left. Most usernames are, and every login preps one.
 */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

function saslprepOrFail(s: string, what: string): string {
  if (PRINTABLE_ASCII.test(s)) return s;
  try {
    // Treated as a "query" string (unassigned code points allowed), as RFC 5802 §5.1 asks for
    // usernames; passwords are prepared the same way at registration and at login, so they match.
    return saslprepImpl(s, { allowUnassigned: true });
  } catch {
    throw new SaslError("malformed-request", `${what} contains characters prohibited by SASLprep`);
  }
}

/** SASLprep (RFC 4013); throws SaslError("malformed-request") on prohibited input. */
export function prepPassword(password: string): string {
  return saslprepOrFail(password, "password");
}

export function prepUsername(username: string): string {
  return saslprepOrFail(username, "username");
}

function hmac(hash: ScramHash, key: Buffer, data: string | Buffer): Buffer {
  return createHmac(HASHES[hash].algorithm, key).update(data).digest();
}

function digest(hash: ScramHash, data: Buffer): Buffer {
  return createHash(HASHES[hash].algorithm).update(data).digest();
}

// RFC 5802 §3: SaltedPassword := Hi(Normalize(password), salt, i); Hi is PBKDF2 with HMAC.
function saltedPassword(hash: ScramHash, preparedPassword: string, salt: Buffer, iterations: number): Promise<Buffer> {
  return pbkdf2Async(Buffer.from(preparedPassword, "utf8"), salt, iterations, HASHES[hash].size, HASHES[hash].algorithm);
}

// RFC 5802 §3: StoredKey := H(HMAC(SaltedPassword, "Client Key")), ServerKey := HMAC(SaltedPassword, "Server Key").
function storedKeyOf(hash: ScramHash, salted: Buffer): Buffer {
  return digest(hash, hmac(hash, salted, "Client Key"));
}

export async function deriveCredentials(
  password: string,
  iterations: number,
  hashes: ScramHash[] = [...SCRAM_HASHES],
  salt?: Buffer,
): Promise<StoredCredentials> {
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError("iterations must be a positive integer");
  const prepared = prepPassword(password);
  const creds: StoredCredentials = {};
  await Promise.all(
    hashes.map(async (hash) => {
      const s = salt ?? randomBytes(SALT_BYTES);
      const salted = await saltedPassword(hash, prepared, s, iterations);
      creds[hash] = {
        salt: s.toString("base64"),
        iterations,
        storedKey: storedKeyOf(hash, salted).toString("base64"),
        serverKey: hmac(hash, salted, "Server Key").toString("base64"),
      };
    }),
  );
  return creds;
}

/** For PLAIN: derives with the salt and iterations of the strongest hash present. */
export async function verifyPassword(creds: StoredCredentials, password: string): Promise<boolean> {
  const hash = SCRAM_HASHES.find((h) => creds[h] !== undefined);
  if (hash === undefined) return false;
  const c = creds[hash]!;
  if (!Number.isSafeInteger(c.iterations) || c.iterations < 1) return false;
  let prepared: string;
  try {
    prepared = prepPassword(password);
  } catch {
    return false;
  }
  const salted = await saltedPassword(hash, prepared, Buffer.from(c.salt, "base64"), c.iterations);
  const expected = Buffer.from(c.storedKey, "base64");
  const actual = storedKeyOf(hash, salted);
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/**
 * A password against stored credentials (PLAIN, mobile login). Unknown users (`creds` null or empty) cost
 * the same derivation with fake credentials, so timing does not tell which accounts exist.
 */
export async function checkPassword(creds: StoredCredentials | null, username: string, password: string, unknownUserIterations: number): Promise<boolean> {
  if (creds && (creds["SHA-256"] || creds["SHA-1"])) return verifyPassword(creds, password);
  await verifyPassword({ "SHA-256": fakeCredentials("SHA-256", username, unknownUserIterations) }, password);
  return false;
}

// Unknown users get credentials that look real and stay the same across attempts, so neither
// the salt nor the step at which authentication fails tells whether the account exists.
const fakeSecret = randomBytes(32);

export function fakeCredentials(hash: ScramHash, username: string, iterations: number): ScramCredentials {
  const seed = createHmac("sha256", fakeSecret).update(`${hash}\0${username}`).digest();
  return {
    salt: seed.subarray(0, SALT_BYTES).toString("base64"),
    iterations,
    storedKey: hmac(hash, seed, "stored").toString("base64"),
    serverKey: hmac(hash, seed, "server").toString("base64"),
  };
}

// ---- shared parsing helpers ----

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function decodeUtf8(input: Buffer): string {
  try {
    return utf8.decode(input);
  } catch {
    throw new SaslError("malformed-request", "not valid UTF-8");
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** RFC 4648 §4 base64 with padding, nothing else; otherwise incorrect-encoding (RFC 6120 §6.5.5). */
export function decodeBase64Strict(s: string): Buffer {
  if (!BASE64.test(s)) throw new SaslError("incorrect-encoding", "invalid base64");
  return Buffer.from(s, "base64");
}

/**
 * An authorization identity is accepted when it is absent/empty or names the authenticating user:
 * its localpart (the whole string, or what precedes "@" in a JID) prepares to the same localpart
 * as the username. A JID authzid is returned as given; the caller checks its domain is ours.
 */
export function checkAuthzid(authzid: string, username: string): string | undefined {
  if (authzid === "") return undefined;
  const slash = authzid.indexOf("/");
  const at = authzid.indexOf("@");
  if (slash >= 0 && (at < 0 || slash < at)) throw new SaslError("invalid-authzid", "authzid has no localpart");
  const local = at >= 0 ? authzid.slice(0, at) : authzid;
  try {
    if (nodeprep(local) !== nodeprep(username)) throw new SaslError("invalid-authzid", "authzid names another user");
  } catch (e) {
    if (e instanceof JidError) throw new SaslError("invalid-authzid", e.message);
    throw e;
  }
  return authzid;
}

// ---- SCRAM ----

/** The TLS channel under a stream, for SCRAM-*-PLUS (RFC 5802 §6, RFC 5929, RFC 9266). */
export interface ChannelBinding {
  /** The binding types this channel advertises (XEP-0440). */
  readonly types: readonly string[];
  /** The binding data of `type`, or null when the channel cannot give it (it may give unadvertised ones). */
  data(type: string): Buffer | null;
}

export interface ScramOptions {
  /** Server nonce to append to the client's; tests only (RFC vectors). Random 24 bytes otherwise. */
  nonce?: string;
  /** The -PLUS variant: the client must bind to `channel`. */
  plus?: boolean;
  /** The stream's channel when the server offers -PLUS on it: a client that says "y" is being downgraded. */
  channel?: ChannelBinding | null;
  /**
   * XEP-0474: the string the downgrade-protection hash is computed over (the advertised mechanisms and
   * channel-binding types); its hash goes into server-first-message as the "h" attribute.
   */
  downgradeProtection?: string;
  /** Iteration count shown for unknown users; should equal the count used at registration. */
  unknownUserIterations?: number;
}

const DEFAULT_UNKNOWN_ITERATIONS = 4096;
const MAX_MESSAGE_BYTES = 8192;
// RFC 5802 §7: printable = %x21-2B / %x2D-7E (printable ASCII except ",").
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const EXTENSION = /^[A-Za-z]=/;

/** RFC 5802 §5.1: "=2C" and "=3D" are the only escapes in a saslname. */
function decodeSaslname(s: string, what: string): string {
  if (s === "" || s.includes("\0") || /=(?!2C|3D)/.test(s)) throw new SaslError("malformed-request", `invalid ${what}`);
  return s.replace(/=2C|=3D/g, (m) => (m === "=2C" ? "," : "="));
}

type ScramState = "initial" | "awaiting-final" | "busy" | "done";

export class ScramMechanism implements SaslMechanism {
  readonly name: string;
  #state: ScramState = "initial";
  #emptyChallengeSent = false;
  #gs2Header = "";
  #clientFirstBare = "";
  #serverFirst = "";
  #nonce = "";
  #username = "";
  #authzid: string | undefined;
  #credentials: ScramCredentials | undefined;
  #known = false;
  #bindingData: Buffer = Buffer.alloc(0);

  constructor(
    readonly hash: ScramHash,
    private readonly lookup: CredentialLookup,
    private readonly opts: ScramOptions = {},
  ) {
    this.name = `SCRAM-${hash}${opts.plus ? "-PLUS" : ""}`;
  }

  async step(input: Buffer): Promise<SaslStep> {
    const state = this.#state;
    if (state === "busy" || state === "done") throw new SaslError("malformed-request", "unexpected SASL step");
    if (input.length > MAX_MESSAGE_BYTES) {
      this.#state = "done";
      throw new SaslError("malformed-request", "SCRAM message too long");
    }
    this.#state = "busy";
    try {
      if (state === "initial") {
        if (input.length === 0 && !this.#emptyChallengeSent) {
          this.#emptyChallengeSent = true;
          this.#state = "initial";
          return { kind: "challenge", data: Buffer.alloc(0) };
        }
        const data = await this.#clientFirst(decodeUtf8(input));
        this.#state = "awaiting-final";
        return { kind: "challenge", data };
      }
      const result = this.#clientFinal(decodeUtf8(input));
      this.#state = "done";
      return result;
    } catch (e) {
      this.#state = "done";
      throw e;
    }
  }

  // RFC 5802 §7: client-first-message = gs2-header client-first-message-bare
  async #clientFirst(text: string): Promise<Buffer> {
    const c1 = text.indexOf(",");
    const c2 = c1 < 0 ? -1 : text.indexOf(",", c1 + 1);
    if (c2 < 0) throw new SaslError("malformed-request", "missing GS2 header");
    const flag = text.slice(0, c1);
    const channel = this.opts.channel ?? null;
    if (flag.startsWith("p=")) {
      // RFC 5802 §6: channel binding belongs to the -PLUS variants only.
      if (!this.opts.plus || !channel) throw new SaslError("malformed-request", "channel binding needs a -PLUS mechanism");
      const data = channel.data(flag.slice(2));
      if (!data) throw new SaslError("malformed-request", `channel binding type ${flag.slice(2)} is not supported here`);
      this.#bindingData = data;
    } else if (this.opts.plus) {
      throw new SaslError("malformed-request", "a -PLUS mechanism needs channel binding (p=)");
    } else if (flag === "y") {
      // RFC 5802 §6: the client binds when it can and thinks we cannot; we offered -PLUS, so the offer was
      // taken away between us (a downgrade).
      if (channel) throw new SaslError("not-authorized", "channel binding downgrade detected");
    } else if (flag !== "n") throw new SaslError("malformed-request", "invalid gs2-cbind-flag");
    const authzField = text.slice(c1 + 1, c2);
    let authzid = "";
    if (authzField !== "") {
      if (!authzField.startsWith("a=")) throw new SaslError("malformed-request", "invalid GS2 authzid");
      authzid = decodeSaslname(authzField.slice(2), "authzid");
    }
    this.#gs2Header = text.slice(0, c2 + 1);
    this.#clientFirstBare = text.slice(c2 + 1);

    const attrs = this.#clientFirstBare.split(",");
    // RFC 5802 §5.1: "m" is reserved; its presence MUST cause authentication failure.
    if (attrs[0].startsWith("m=")) throw new SaslError("malformed-request", "unsupported mandatory extension");
    if (attrs.length < 2 || !attrs[0].startsWith("n=") || !attrs[1].startsWith("r=")) {
      throw new SaslError("malformed-request", "invalid client-first-message");
    }
    for (const ext of attrs.slice(2)) if (!EXTENSION.test(ext)) throw new SaslError("malformed-request", "invalid extension");
    const username = prepUsername(decodeSaslname(attrs[0].slice(2), "username"));
    if (username === "") throw new SaslError("malformed-request", "empty username");
    const clientNonce = attrs[1].slice(2);
    if (!PRINTABLE.test(clientNonce)) throw new SaslError("malformed-request", "invalid client nonce");
    this.#authzid = checkAuthzid(authzid, username);
    this.#username = username;

    const serverNonce = this.opts.nonce ?? randomString(24, "base64");
    if (!PRINTABLE.test(serverNonce)) throw new TypeError("server nonce must be printable ASCII without ','");
    this.#nonce = clientNonce + serverNonce;

    let stored: StoredCredentials | null;
    try {
      stored = await this.lookup(username);
    } catch (err) {
      if (err instanceof SaslError) throw err;
      throw new SaslError("temporary-auth-failure", "credential lookup failed");
    }
    const creds = stored?.[this.hash];
    this.#known = creds !== undefined && isUsable(this.hash, creds);
    this.#credentials = this.#known
      ? creds
      : fakeCredentials(this.hash, username, this.opts.unknownUserIterations ?? DEFAULT_UNKNOWN_ITERATIONS);
    const c = this.#credentials!;
    const salt = Buffer.from(c.salt, "base64").toString("base64");
    this.#serverFirst = `r=${this.#nonce},s=${salt},i=${c.iterations}`;
    const ssdp = this.opts.downgradeProtection;
    if (ssdp !== undefined) this.#serverFirst += `,h=${digest(this.hash, Buffer.from(ssdp, "utf8")).toString("base64")}`;
    return Buffer.from(this.#serverFirst, "utf8");
  }

  // RFC 5802 §7: client-final-message = client-final-message-without-proof "," proof
  #clientFinal(text: string): SaslStep {
    const p = text.lastIndexOf(",p=");
    if (p < 0) throw new SaslError("malformed-request", "missing proof");
    const withoutProof = text.slice(0, p);
    const proofText = text.slice(p + 3);
    const attrs = withoutProof.split(",");
    if (attrs.length < 2 || !attrs[0].startsWith("c=") || !attrs[1].startsWith("r=") || proofText.includes(",")) {
      throw new SaslError("malformed-request", "invalid client-final-message");
    }
    for (const ext of attrs.slice(2)) {
      if (!EXTENSION.test(ext) || ext.startsWith("m=")) throw new SaslError("malformed-request", "invalid extension");
    }
    const channelBinding = decodeBase64Strict(attrs[0].slice(2));
    const proof = decodeBase64Strict(proofText);

    // RFC 5802 §5.1 "c": the GS2 header, then the channel's binding data when the client asked to bind.
    const expected = Buffer.concat([Buffer.from(this.#gs2Header, "utf8"), this.#bindingData]);
    if (channelBinding.length !== expected.length || !timingSafeEqual(channelBinding, expected)) {
      throw new SaslError("not-authorized", "channel binding data does not match");
    }
    // RFC 5802 §5.1 "r": must be exactly the combined nonce of server-first-message.
    if (attrs[1].slice(2) !== this.#nonce) throw new SaslError("not-authorized", "nonce mismatch");
    const size = HASHES[this.hash].size;
    if (proof.length !== size) throw new SaslError("malformed-request", "proof has the wrong length");

    // RFC 5802 §3: AuthMessage, ClientSignature := HMAC(StoredKey, AuthMessage),
    // ClientKey := ClientProof XOR ClientSignature; the proof is valid when H(ClientKey) = StoredKey.
    const c = this.#credentials!;
    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const storedKey = Buffer.from(c.storedKey, "base64");
    const signature = hmac(this.hash, storedKey, authMessage);
    const clientKey = Buffer.alloc(size);
    for (let i = 0; i < size; i++) clientKey[i] = proof[i] ^ signature[i];
    const valid = timingSafeEqual(digest(this.hash, clientKey), storedKey);
    if (!valid || !this.#known) throw new SaslError("not-authorized");

    // RFC 5802 §5.1 "v": ServerSignature := HMAC(ServerKey, AuthMessage), sent with <success/>.
    const serverSignature = hmac(this.hash, Buffer.from(c.serverKey, "base64"), authMessage);
    const step: Extract<SaslStep, { kind: "success" }> = {
      kind: "success",
      data: Buffer.from(`v=${serverSignature.toString("base64")}`, "utf8"),
      username: this.#username,
    };
    if (this.#authzid !== undefined) step.authzid = this.#authzid;
    return step;
  }
}

function isUsable(hash: ScramHash, c: ScramCredentials): boolean {
  const size = HASHES[hash].size;
  return (
    Number.isSafeInteger(c.iterations) &&
    c.iterations >= 1 &&
    typeof c.salt === "string" &&
    c.salt !== "" &&
    Buffer.from(c.storedKey, "base64").length === size &&
    Buffer.from(c.serverKey, "base64").length === size
  );
}
