// Random strings for stream ids, generated resources and SCRAM nonces, taken from a pool that is refilled from
// the CSPRNG 4 KiB at a time: one randomFillSync per call was a visible share of a login (three per login).
// The bytes are as unpredictable as randomBytes'; each is handed out once.
import { randomFillSync } from "node:crypto";

const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

/** `n` random bytes (n ≤ 4096) as hex or base64. */
export function randomString(n: number, encoding: "hex" | "base64"): string {
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const s = pool.toString(encoding, offset, offset + n);
  // Handed out once: what was read is overwritten before the next refill could leave it in memory for long.
  pool.fill(0, offset, offset + n);
  offset += n;
  return s;
}
