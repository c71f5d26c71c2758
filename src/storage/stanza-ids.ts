// XEP-0359 stanza-ids of 1:1 timeline rows, derived from the row's (owner, seq) instead of stored and indexed:
// the id is that pair encrypted under the deployment's key (one AES block: the seq and a tag of the owner),
// so a lookup by id decrypts to the primary key, and no (owner, stanza_id) index entry is written per row.
// XEP-0359 §5: nobody can infer the size of the archive from an id, nor predict one (§3.3 rule 2), without the
// key. Rows stored with a stanza-id of their own (before migration 0006, and MUC rows, whose id goes out
// before the row is written) keep it, indexed as before.
import { createCipheriv, createDecipheriv, createHash, type Cipher, type Decipher } from "node:crypto";

/** The bytes of a derived id (one AES block), base64url: 22 characters. */
const BLOCK = 16;
const ID_CHARS = 22;
/** Owner tags kept (SHA-256 of the owner, 8 bytes); the map is cleared when it grows past this. */
const MAX_TAGS = 10_000;

export interface StanzaIds {
  /** The id of `owner`'s row `seq`. */
  encode(owner: string, seq: number): string;
  /** The ids of the rows `seqs[i]` of `owners[i]`, in one cipher call (a commit's new rows). */
  encodeAll(owners: readonly string[], seqs: readonly number[]): string[];
  /** The seq a derived id of `owner` names, or null (not a derived id, or another owner's). */
  decode(owner: string, id: string): number | null;
}

export function stanzaIds(key: Buffer): StanzaIds {
  if (key.length !== 16) throw new Error("stanza-id key: 16 bytes expected");
  // ECB on single blocks: each update() is one independent block, so one cipher object serves every call.
  const cipher: Cipher = createCipheriv("aes-128-ecb", key, null).setAutoPadding(false);
  const decipher: Decipher = createDecipheriv("aes-128-ecb", key, null).setAutoPadding(false);
  const tags = new Map<string, Buffer>();
  const tagOf = (owner: string): Buffer => {
    let tag = tags.get(owner);
    if (tag === undefined) {
      if (tags.size >= MAX_TAGS) tags.clear();
      tags.set(owner, tag = createHash("sha256").update(owner).digest().subarray(0, 8));
    }
    return tag;
  };
  /** One plain block at `at`: the seq (big-endian, 64 bits; seqs stay below 2^53) and the owner's tag. */
  const put = (into: Buffer, at: number, owner: string, seq: number): void => {
    into.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), at);
    into.writeUInt32BE(seq >>> 0, at + 4);
    tagOf(owner).copy(into, at + 8);
  };
  const block = Buffer.alloc(BLOCK);
  return {
    encode(owner, seq) {
      put(block, 0, owner, seq);
      return cipher.update(block).toString("base64url");
    },
    encodeAll(owners, seqs) {
      const n = seqs.length;
      if (n === 0) return [];
      const plain = Buffer.allocUnsafe(n * BLOCK);
      for (let i = 0; i < n; i++) put(plain, i * BLOCK, owners[i], seqs[i]);
      const encrypted = cipher.update(plain);
      const out: string[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = encrypted.toString("base64url", i * BLOCK, (i + 1) * BLOCK);
      return out;
    },
    decode(owner, id) {
      if (id.length !== ID_CHARS) return null;
      const bytes = Buffer.from(id, "base64url");
      if (bytes.length !== BLOCK || bytes.toString("base64url") !== id) return null;
      const plain = decipher.update(bytes);
      if (!plain.subarray(8).equals(tagOf(owner))) return null;
      const seq = plain.readBigUInt64BE(0);
      return seq > 0n && seq <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(seq) : null;
    },
  };
}

/** The split of a list of stanza-ids into derived ones (as seqs) and stored ones. */
export function splitStanzaIds(ids: StanzaIds, owner: string, list: readonly string[]): { seqs: number[]; stored: string[] } {
  const seqs: number[] = [];
  const stored: string[] = [];
  for (const id of list) {
    const seq = ids.decode(owner, id);
    if (seq === null) stored.push(id);
    else seqs.push(seq);
  }
  return { seqs, stored };
}
