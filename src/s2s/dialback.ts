// Server Dialback keys (XEP-0220 §2.1.2, generated as XEP-0185 recommends) and the secret they come from.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Config } from "../config/config.js";

export const NS_DIALBACK = "jabber:server:dialback";
export const NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback";

/** XEP-0185 §3: HMAC-SHA256(hex(SHA256(secret)), receiving + " " + originating + " " + stream id), hex. */
export function dialbackKey(secret: string, receiving: string, originating: string, streamId: string): string {
  const hmacKey = createHash("sha256").update(secret).digest("hex");
  return createHmac("sha256", hmacKey).update(`${receiving} ${originating} ${streamId}`).digest("hex");
}

export function sameKey(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `s2s.dialbackSecret`, or one generated on first start and kept in the data directory. */
export async function loadDialbackSecret(config: Config): Promise<string> {
  if (config.s2s.dialbackSecret !== null) return config.s2s.dialbackSecret;
  const file = path.join(config.dataDir, "s2s-dialback.secret");
  try {
    const existing = (await readFile(file, "utf8")).trim();
    if (existing.length >= 16) return existing;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const secret = randomBytes(32).toString("hex");
  await mkdir(config.dataDir, { recursive: true });
  await writeFile(file, secret + "\n", { mode: 0o600 });
  return secret;
}
