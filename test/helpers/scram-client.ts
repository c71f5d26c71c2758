// Client side of SCRAM (RFC 5802) for tests: independent of the server's implementation. With `binding`, the
// -PLUS variant (RFC 5802 §6): `p=<type>` and the channel's data in "c"; `"y"` claims support the server
// seemingly lacks.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";

export type Hash = "SHA-1" | "SHA-256";
const algo = (h: Hash) => (h === "SHA-1" ? "sha1" : "sha256");

export type Binding = { type: string; data: Buffer } | "y";

export class ScramClient {
  private nonce = randomBytes(18).toString("base64");
  private firstBare: string;
  private serverSignature: Buffer | null = null;
  private readonly gs2: string;
  /** XEP-0474: the "h" attribute of server-first-message, if the server sent one. */
  downgradeHash: string | null = null;

  constructor(private readonly hash: Hash, username: string, private readonly password: string, private readonly binding?: Binding) {
    this.firstBare = `n=${username.replace(/=/g, "=3D").replace(/,/g, "=2C")},r=${this.nonce}`;
    this.gs2 = binding === undefined ? "n,," : binding === "y" ? "y,," : `p=${binding.type},,`;
  }

  first(): string { return `${this.gs2}${this.firstBare}`; }

  /** XEP-0474 §3.1 on the client side: the hash the server should send for what the client was shown. */
  expectedDowngradeHash(mechanisms: string[], bindingTypes: string[] | null): string {
    const sort = (a: string[]) => [...a].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    let s = sort(mechanisms).join("\x1e");
    if (bindingTypes) s += `\x1f${sort(bindingTypes).join("\x1e")}`;
    return createHash(algo(this.hash)).update(s).digest("base64");
  }

  final(serverFirst: string): string {
    const attrs = Object.fromEntries(serverFirst.split(",").map((p) => [p[0], p.slice(2)]));
    if (!attrs.r?.startsWith(this.nonce)) throw new Error("server nonce does not extend ours");
    this.downgradeHash = attrs.h ?? null;
    const salted = pbkdf2Sync(this.password, Buffer.from(attrs.s, "base64"), Number(attrs.i), algo(this.hash) === "sha1" ? 20 : 32, algo(this.hash));
    const clientKey = createHmac(algo(this.hash), salted).update("Client Key").digest();
    const storedKey = createHash(algo(this.hash)).update(clientKey).digest();
    const cbind = Buffer.concat([Buffer.from(this.gs2), typeof this.binding === "object" ? this.binding.data : Buffer.alloc(0)]);
    const withoutProof = `c=${cbind.toString("base64")},r=${attrs.r}`;
    const authMessage = `${this.firstBare},${serverFirst},${withoutProof}`;
    const clientSig = createHmac(algo(this.hash), storedKey).update(authMessage).digest();
    const proof = Buffer.from(clientKey.map((b, i) => b ^ clientSig[i]));
    const serverKey = createHmac(algo(this.hash), salted).update("Server Key").digest();
    this.serverSignature = createHmac(algo(this.hash), serverKey).update(authMessage).digest();
    return `${withoutProof},p=${proof.toString("base64")}`;
  }

  verify(serverFinal: string): boolean {
    return serverFinal === `v=${this.serverSignature!.toString("base64")}`;
  }
}
