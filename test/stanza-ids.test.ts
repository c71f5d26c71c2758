import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { stanzaIds } from "../src/storage/stanza-ids.js";

describe("derived stanza-ids (XEP-0359 over the seq)", () => {
  const ids = stanzaIds(randomBytes(16));
  const seqs = [1, 2, 255, 256, 65_535, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12_345, Number.MAX_SAFE_INTEGER];

  it("decodes every id back to its seq, on both sides of 2^32, and only for its owner", () => {
    for (const seq of seqs) {
      const id = ids.encode("romeo@montague.lit", seq);
      assert.match(id, /^[A-Za-z0-9_-]{22}$/);
      assert.equal(ids.decode("romeo@montague.lit", id), seq, `seq ${seq}`);
      assert.equal(ids.decode("juliet@capulet.lit", id), null, `seq ${seq} read as another owner's`);
    }
  });

  it("makes a batch's ids in one go, each the id encode() gives", () => {
    const owners = seqs.map((_, i) => (i % 2 === 0 ? "romeo@montague.lit" : "juliet@capulet.lit"));
    const all = ids.encodeAll(owners, seqs);
    assert.deepEqual(all, seqs.map((seq, i) => ids.encode(owners[i], seq)));
    assert.equal(new Set(all).size, seqs.length);
    assert.deepEqual(ids.encodeAll([], []), []);
  });
});
