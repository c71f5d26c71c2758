import assert from "node:assert/strict";
import { jid, Jid, JidError, nameprep, nodeprep, parseJid, resourceprep, tryParseJid } from "../src/jid/jid.js";

const parts = (j: Jid) => [j.local, j.domain, j.resource];

describe("JID", () => {
  describe("RFC 7622 §3.5.1 valid examples", () => {
    const valid: Array<[string, string, string, string]> = [
      ["juliet@example.com", "juliet", "example.com", ""],
      ["juliet@example.com/foo", "juliet", "example.com", "foo"],
      ["juliet@example.com/foo bar", "juliet", "example.com", "foo bar"],
      ["juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar"],
      ["foo\\20bar@example.com", "foo\\20bar", "example.com", ""],
      ["fussball@example.com", "fussball", "example.com", ""],
      ["fußball@example.com", "fußball", "example.com", ""],
      ["π@example.com", "π", "example.com", ""],
      ["Σ@example.com/foo", "σ", "example.com", "foo"],
      ["σ@example.com/foo", "σ", "example.com", "foo"],
      ["ς@example.com/foo", "ς", "example.com", "foo"],
      ["king@example.com/♚", "king", "example.com", "♚"],
      ["example.com", "", "example.com", ""],
      ["example.com/foobar", "", "example.com", "foobar"],
      ["a.example.com/b@example.net", "", "a.example.com", "b@example.net"],
    ];
    for (const [input, local, domain, resource] of valid) {
      it(input, () => {
        assert.deepEqual(parts(parseJid(input)), [local, domain, resource]);
      });
    }
    it("fußball and fussball stay distinct", () => {
      assert.equal(parseJid("fußball@example.com").equals(parseJid("fussball@example.com")), false);
    });
  });

  describe("RFC 7622 §3.5.2 invalid examples", () => {
    for (const input of [
      '"juliet"@example.com',
      "foo bar@example.com",
      "juliet@example.com/",
      "@example.com/",
      "henry\u2163@example.com",
      "♚@example.com",
      "juliet@",
      "/foobar",
    ]) {
      it(JSON.stringify(input), () => {
        assert.throws(() => parseJid(input), JidError);
        assert.equal(tryParseJid(input), null);
      });
    }
  });

  describe("parsing", () => {
    it("splits at the first / and the first @ before it", () => {
      assert.deepEqual(parts(parseJid("a@b/c@d/e")), ["a", "b", "c@d/e"]);
      assert.deepEqual(parts(parseJid("b/c@d")), ["", "b", "c@d"]);
      assert.throws(() => parseJid("a@b@c"), JidError);
    });

    it("rejects empty parts when the separator is present", () => {
      for (const input of ["", "@", "/", "@example.com", "juliet@/r", "juliet@example.com/", "."]) {
        assert.throws(() => parseJid(input), JidError, input);
      }
    });

    it("folds case in local and domain, keeps the resource", () => {
      const j = parseJid("JuLiEt@Example.COM/Balcony");
      assert.equal(j.toString(), "juliet@example.com/Balcony");
      assert.ok(j.equals(parseJid("juliet@example.com/Balcony")));
      assert.ok(!j.equals(parseJid("juliet@example.com/balcony")));
      assert.equal(parseJid("ÉLODIE@EXAMPLE.COM").local, "élodie");
      assert.equal(nodeprep("ＪＵＬＩＥＴ"), "juliet"); // fullwidth is width-mapped
    });

    it("normalises Unicode: NFC for local and resource, NFKC for the domain", () => {
      assert.equal(nodeprep("e\u0301lodie"), "\u00e9lodie");
      assert.equal(resourceprep("cafe\u0301"), "caf\u00e9");
      assert.equal(resourceprep("a\u00a0b"), "a b");
      assert.equal(resourceprep("ℌ"), "ℌ"); // OpaqueString keeps compatibility characters
      assert.equal(nameprep("ＥＸＡＭＰＬＥ。com"), "example.com");
    });

    it("strips one trailing dot from the domain", () => {
      assert.equal(parseJid("juliet@example.com./r").toString(), "juliet@example.com/r");
      assert.throws(() => parseJid("juliet@example.com.."), JidError);
    });

    it("accepts IP literals and rejects bad labels", () => {
      assert.equal(parseJid("juliet@127.0.0.1").domain, "127.0.0.1");
      assert.equal(parseJid("juliet@[::1]/r").domain, "[::1]");
      assert.equal(parseJid("[2001:DB8::1]").domain, "[2001:db8::1]");
      assert.equal(nameprep("_xmpp-client.example.com"), "_xmpp-client.example.com");
      for (const bad of ["[::1", "[notanip]", "-example.com", "example-.com", "exa mple.com", "a..b", ".example.com", "ex!ample.com", "xn--zz"]) {
        assert.throws(() => nameprep(bad), JidError, bad);
      }
      assert.throws(() => nameprep("a".repeat(64) + ".com"), JidError);
      assert.equal(nameprep("a".repeat(63) + ".com").length, 67);
    });

    it("accepts internationalised domains and converts A-labels to U-labels", () => {
      assert.equal(nameprep("MÜNCHEN.example"), "münchen.example");
      assert.equal(nameprep("xn--mnchen-3ya.example"), "münchen.example");
      assert.ok(parseJid("juliet@xn--mnchen-3ya.example").equals(parseJid("juliet@münchen.example")));
      assert.throws(() => nameprep("♚.example"), JidError);
    });

    it("rejects forbidden localpart characters and controls", () => {
      for (const bad of ['a"b', "a&b", "a'b", "a:b", "a<b", "a>b", "a\tb", "a\u0000b", "a\u00a0b", "a\u200bb"]) {
        assert.throws(() => nodeprep(bad), JidError, JSON.stringify(bad));
      }
      for (const bad of ["a\u0000b", "a\u0007", "a\u007f", "a\u0085", "\ud800"]) {
        assert.throws(() => resourceprep(bad), JidError, JSON.stringify(bad));
      }
    });

    it("enforces 1..1023 octets per part", () => {
      const domain = "example.com";
      assert.equal(parseJid(`${"a".repeat(1023)}@${domain}`).local.length, 1023);
      assert.throws(() => parseJid(`${"a".repeat(1024)}@${domain}`), JidError);
      assert.equal(parseJid(`${domain}/${"r".repeat(1023)}`).resource.length, 1023);
      assert.throws(() => parseJid(`${domain}/${"r".repeat(1024)}`), JidError);
      // Octets, not UTF-16 units: "é" is two octets.
      assert.equal(nodeprep("é".repeat(511)).length, 511);
      assert.throws(() => nodeprep("é".repeat(512)), JidError);
      assert.throws(() => resourceprep("é".repeat(512)), JidError);
      const longDomain = Array.from({ length: 17 }, () => "a".repeat(63)).join(".");
      assert.throws(() => nameprep(longDomain), JidError);
      assert.equal(nameprep(longDomain.slice(0, 1023)).length, 1023);
    });
  });

  describe("Jid", () => {
    it("builds from parts with jid()", () => {
      const j = jid("Juliet", "Example.com", "balcony");
      assert.equal(j.toString(), "juliet@example.com/balcony");
      assert.equal(jid("", "example.com").toString(), "example.com");
      assert.equal(jid("romeo", "example.com", "").isBare, true);
      assert.throws(() => jid("a b", "example.com"), JidError);
      assert.throws(() => jid("a", ""), JidError);
    });

    it("bare(), withResource(), bareString()", () => {
      const full = parseJid("juliet@example.com/balcony");
      assert.equal(full.isBare, false);
      const bare = full.bare();
      assert.equal(bare.isBare, true);
      assert.equal(bare.toString(), "juliet@example.com");
      assert.equal(bare.bare(), bare);
      assert.equal(full.bareString(), "juliet@example.com");
      assert.equal(bare.withResource("chamber").toString(), "juliet@example.com/chamber");
      assert.equal(full.withResource("").toString(), "juliet@example.com");
      assert.throws(() => bare.withResource("a\u0000"), JidError);
      assert.equal(`${parseJid("example.com/x")}`, "example.com/x");
    });

    it("cannot be constructed without preparation", () => {
      const Ctor = Jid as unknown as new (...args: unknown[]) => Jid;
      assert.throws(() => new Ctor("A B", "x", "", Symbol("prepared jid parts")), TypeError);
    });

    it("cached instances are immutable", () => {
      const input = "mutable@example.com/test";
      const a = parseJid(input);
      assert.equal(parseJid(input), a, "second parse hits the cache");
      assert.ok(Object.isFrozen(a));
      assert.throws(() => {
        (a as { local: string }).local = "evil";
      }, TypeError);
      assert.throws(() => {
        (a as unknown as Record<string, unknown>).extra = 1;
      }, TypeError);
      const b = parseJid(input);
      assert.equal(b.local, "mutable");
      assert.equal(b.toString(), "mutable@example.com/test");
      // Derived JIDs are new objects and leave the cached one alone.
      assert.equal(a.withResource("other").toString(), "mutable@example.com/other");
      assert.equal(parseJid(input).resource, "test");
    });

    it("stays correct after the cache overflows", () => {
      const first = parseJid("u0@example.com");
      for (let i = 1; i <= 10_500; i++) parseJid(`u${i}@example.com`);
      const again = parseJid("u0@example.com");
      assert.ok(again.equals(first));
      assert.equal(parseJid("u10500@example.com").local, "u10500");
    });

    it("tryParseJid handles absent input", () => {
      assert.equal(tryParseJid(undefined), null);
      assert.equal(tryParseJid(null), null);
      assert.equal(tryParseJid("example.com")?.domain, "example.com");
    });
  });
});
