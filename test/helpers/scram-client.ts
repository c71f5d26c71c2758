// Client side of SCRAM (RFC 5802) for tests: independent of the server's implementation.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";

export type Hash = "SHA-1" | "SHA-256";
const algo = (h: Hash) => (h === "SHA-1" ? "sha1" : "sha256");

export class ScramClient {
  private nonce = randomBytes(18).toString("base64");
  private firstBare: string;
  private serverSignature: Buffer | null = null;

  constructor(private readonly hash: Hash, username: string, private readonly password: string) {
    this.firstBare = `n=${username.replace(/=/g, "=3D").replace(/,/g, "=2C")},r=${this.nonce}`;
  }

  first(): string { return `n,,${this.firstBare}`; }

  final(serverFirst: string): string {
    const attrs = Object.fromEntries(serverFirst.split(",").map((p) => [p[0], p.slice(2)]));
    if (!attrs.r?.startsWith(this.nonce)) throw new Error("server nonce does not extend ours");
    const salted = pbkdf2Sync(this.password, Buffer.from(attrs.s, "base64"), Number(attrs.i), algo(this.hash) === "sha1" ? 20 : 32, algo(this.hash));
    const clientKey = createHmac(algo(this.hash), salted).update("Client Key").digest();
    const storedKey = createHash(algo(this.hash)).update(clientKey).digest();
    const withoutProof = `c=biws,r=${attrs.r}`;
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
