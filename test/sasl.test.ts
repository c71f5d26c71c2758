import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import {
  createMechanism,
  decodeSaslData,
  deriveCredentials,
  offeredMechanisms,
  prepPassword,
  prepUsername,
  SaslError,
  verifyPassword,
  type CredentialLookup,
  type SaslCondition,
  type SaslMechanism,
  type SaslStep,
  type ScramHash,
  type StoredCredentials,
} from "../src/c2s/sasl/index.js";

const b = (s: string) => Buffer.from(s, "utf8");
const text = (step: SaslStep) => (step.data ?? Buffer.alloc(0)).toString("utf8");

async function rejects(p: Promise<unknown>, condition: SaslCondition): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SaslError, `expected SaslError, got ${String(e)}`);
    assert.equal(e.condition, condition);
    return true;
  });
}

function storeOf(users: Record<string, StoredCredentials>): CredentialLookup & { calls: string[] } {
  const calls: string[] = [];
  const lookup = async (username: string) => {
    calls.push(username);
    return users[username] ?? null;
  };
  return Object.assign(lookup, { calls });
}

/** A SCRAM client written from RFC 5802 §3 for the tests, independent of the server code. */
class ScramClient {
  readonly nonce = randomBytes(18).toString("base64");
  readonly gs2: string;
  #bare = "";
  #authMessage = "";
  #saltedPassword = Buffer.alloc(0);

  constructor(
    readonly hash: ScramHash,
    readonly username: string,
    readonly password: string,
    opts: { gs2?: string } = {},
  ) {
    this.gs2 = opts.gs2 ?? "n,,";
  }

  get alg(): string {
    return this.hash === "SHA-1" ? "sha1" : "sha256";
  }

  first(): Buffer {
    const name = this.username.replace(/=/g, "=3D").replace(/,/g, "=2C");
    this.#bare = `n=${name},r=${this.nonce}`;
    return b(this.gs2 + this.#bare);
  }

  final(serverFirst: Buffer, tamper: { nonce?: string; cb?: string; proof?: string } = {}): Buffer {
    const sf = serverFirst.toString("utf8");
    const attrs = Object.fromEntries(sf.split(",").map((a) => [a[0], a.slice(2)]));
    assert.ok(attrs.r.startsWith(this.nonce), "server nonce extends the client nonce");
    const size = this.hash === "SHA-1" ? 20 : 32;
    this.#saltedPassword = pbkdf2Sync(prepPassword(this.password), Buffer.from(attrs.s, "base64"), Number(attrs.i), size, this.alg);
    const withoutProof = `c=${tamper.cb ?? Buffer.from(this.gs2).toString("base64")},r=${tamper.nonce ?? attrs.r}`;
    this.#authMessage = `${this.#bare},${sf},${withoutProof}`;
    const clientKey = createHmac(this.alg, this.#saltedPassword).update("Client Key").digest();
    const storedKey = createHash(this.alg).update(clientKey).digest();
    const signature = createHmac(this.alg, storedKey).update(this.#authMessage).digest();
    const proof = Buffer.alloc(size);
    for (let i = 0; i < size; i++) proof[i] = clientKey[i] ^ signature[i];
    return b(`${withoutProof},p=${tamper.proof ?? proof.toString("base64")}`);
  }

  expectedServerFinal(): string {
    const serverKey = createHmac(this.alg, this.#saltedPassword).update("Server Key").digest();
    return "v=" + createHmac(this.alg, serverKey).update(this.#authMessage).digest("base64");
  }
}

const HASHES: ScramHash[] = ["SHA-1", "SHA-256"];
const mechanismName = (h: ScramHash) => `SCRAM-${h}`;

describe("SASL", () => {
  let users: Record<string, StoredCredentials>;

  before(async () => {
    users = {
      juliet: await deriveCredentials("r0m30myr0m30", 4096),
      romeo: await deriveCredentials("I\u00ADX", 4096),
      "a,b=c": await deriveCredentials("secret", 4096),
      oldtimer: await deriveCredentials("secret", 4096, ["SHA-1"]),
    };
  });

  describe("credentials", () => {
    it("derives one entry per hash with a fresh 16-byte salt each", async () => {
      const creds = await deriveCredentials("pencil", 4096);
      assert.deepEqual(Object.keys(creds).sort(), ["SHA-1", "SHA-256"]);
      assert.equal(Buffer.from(creds["SHA-1"]!.salt, "base64").length, 16);
      assert.notEqual(creds["SHA-1"]!.salt, creds["SHA-256"]!.salt);
      assert.equal(Buffer.from(creds["SHA-256"]!.storedKey, "base64").length, 32);
      assert.equal(Buffer.from(creds["SHA-1"]!.serverKey, "base64").length, 20);
      const again = await deriveCredentials("pencil", 4096);
      assert.notEqual(again["SHA-256"]!.salt, creds["SHA-256"]!.salt);
    });

    it("verifies passwords against the strongest hash present", async () => {
      const creds = await deriveCredentials("pencil", 4096);
      assert.equal(await verifyPassword(creds, "pencil"), true);
      assert.equal(await verifyPassword(creds, "pencil!"), false);
      assert.equal(await verifyPassword({ "SHA-1": creds["SHA-1"] }, "pencil"), true);
      // A corrupt SHA-1 entry is ignored when SHA-256 is present.
      assert.equal(await verifyPassword({ ...creds, "SHA-1": { ...creds["SHA-1"]!, storedKey: "AAAA" } }, "pencil"), true);
      assert.equal(await verifyPassword({}, "pencil"), false);
    });

    it("SASLpreps passwords (RFC 4013 §3 examples)", () => {
      assert.equal(prepPassword("I\u00ADX"), "IX");
      assert.equal(prepPassword("user"), "user");
      assert.equal(prepPassword("USER"), "USER");
      assert.equal(prepPassword("\u00AA"), "a");
      assert.equal(prepPassword("\u2168"), "IX");
      assert.equal(prepPassword("a\u00A0b\u2003c"), "a b c");
      assert.throws(() => prepPassword("\u0007"), (e: unknown) => e instanceof SaslError && e.condition === "malformed-request");
      assert.throws(() => prepPassword("\u0627\u0031"), SaslError);
    });

    it("takes printable ASCII as SASLprep's identity, as the full algorithm does", () => {
      const saslprep = createRequire(import.meta.url)("saslprep") as (s: string, o: { allowUnassigned: boolean }) => string;
      const ascii = Array.from({ length: 0x7f - 0x20 }, (_, i) => String.fromCharCode(0x20 + i));
      for (const s of [...ascii, ascii.join(""), "", " ", "user1", "a b"]) {
        assert.equal(prepUsername(s), saslprep(s, { allowUnassigned: true }));
        assert.equal(prepPassword(s), s);
      }
      // The characters just outside the fast path still go through the algorithm.
      assert.throws(() => prepUsername("a\u007fb"), SaslError);
      assert.throws(() => prepUsername("\u001f"), SaslError);
      assert.equal(prepUsername("a\u00A0b"), "a b");
    });

    it("equivalent passwords verify against each other", async () => {
      const creds = await deriveCredentials("IX", 4096);
      assert.equal(await verifyPassword(creds, "I\u00ADX"), true);
      assert.equal(await verifyPassword(creds, "\u2168"), true);
      assert.equal(await verifyPassword(creds, "ix"), false);
      assert.equal(await verifyPassword(creds, "\u0007"), false);
    });
  });

  describe("SCRAM test vectors", () => {
    it("SCRAM-SHA-1, RFC 5802 §5", async () => {
      const creds = await deriveCredentials("pencil", 4096, ["SHA-1"], Buffer.from("QSXCR+Q6sek8bf92", "base64"));
      const mech = createMechanism("SCRAM-SHA-1", storeOf({ user: creds }), { secure: true, nonce: "3rfcNHYJY1ZVvWVs7j" });
      assert.equal(mech.name, "SCRAM-SHA-1");
      const first = await mech.step(b("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"));
      assert.equal(first.kind, "challenge");
      assert.equal(text(first), "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
      const final = await mech.step(
        b("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="),
      );
      assert.equal(final.kind, "success");
      assert.equal(text(final), "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
      assert.equal(final.kind === "success" && final.username, "user");
      assert.equal(final.kind === "success" && final.authzid, undefined);
    });

    it("SCRAM-SHA-256, RFC 7677 §3", async () => {
      const creds = await deriveCredentials("pencil", 4096, ["SHA-256"], Buffer.from("W22ZaJ0SNY7soEsUEjb6gQ==", "base64"));
      const mech = createMechanism("SCRAM-SHA-256", storeOf({ user: creds }), {
        secure: true,
        nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
      });
      const first = await mech.step(b("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
      assert.equal(text(first), "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
      const final = await mech.step(
        b("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
      );
      assert.equal(final.kind, "success");
      assert.equal(text(final), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    });
  });

  for (const hash of HASHES) {
    describe(mechanismName(hash), () => {
      const start = (lookup: CredentialLookup = storeOf(users)) => createMechanism(mechanismName(hash), lookup, { secure: false });

      it("completes an exchange and returns the server signature", async () => {
        const lookup = storeOf(users);
        const mech = start(lookup);
        const client = new ScramClient(hash, "juliet", "r0m30myr0m30");
        const challenge = await mech.step(client.first());
        assert.equal(challenge.kind, "challenge");
        assert.match(text(challenge), new RegExp(`^r=${client.nonce.replace(/[+/]/g, "\\$&")}[\\x21-\\x2b\\x2d-\\x7e]{32},s=[A-Za-z0-9+/=]+,i=4096$`));
        const done = await mech.step(client.final(challenge.data!));
        assert.deepEqual({ ...done, data: undefined }, { kind: "success", data: undefined, username: "juliet" });
        assert.equal(text(done), client.expectedServerFinal());
        assert.deepEqual(lookup.calls, ["juliet"]);
        await rejects(mech.step(b("c=biws")), "malformed-request");
      });

      it("answers an empty initial response with an empty challenge", async () => {
        const mech = start();
        const client = new ScramClient(hash, "juliet", "r0m30myr0m30");
        const empty = await mech.step(Buffer.alloc(0));
        assert.deepEqual(empty, { kind: "challenge", data: Buffer.alloc(0) });
        const challenge = await mech.step(client.first());
        assert.equal((await mech.step(client.final(challenge.data!))).kind, "success");
      });

      it("accepts the y gs2 flag and an authzid naming the same user", async () => {
        for (const [gs2, authzid] of [
          ["y,,", undefined],
          ["n,a=juliet,", "juliet"],
          ["y,a=Juliet@example.com,", "Juliet@example.com"],
        ] as const) {
          const mech = start();
          const client = new ScramClient(hash, "juliet", "r0m30myr0m30", { gs2 });
          const challenge = await mech.step(client.first());
          const done = await mech.step(client.final(challenge.data!));
          assert.equal(done.kind, "success");
          assert.equal(done.kind === "success" && done.authzid, authzid);
        }
      });

      it("decodes =2C and =3D in usernames", async () => {
        const mech = start();
        const client = new ScramClient(hash, "a,b=c", "secret");
        assert.match(client.first().toString(), /^n,,n=a=2Cb=3Dc,/);
        const challenge = await mech.step(client.first());
        const done = await mech.step(client.final(challenge.data!));
        assert.equal(done.kind === "success" && done.username, "a,b=c");
        await rejects(start().step(b("n,,n=a=2Db,r=abc")), "malformed-request");
      });

      it("SASLpreps the password on the client side (I\\u00ADX and \\u2168 are IX)", async () => {
        for (const password of ["I\u00ADX", "\u2168", "IX"]) {
          const mech = start();
          const client = new ScramClient(hash, "romeo", password);
          const challenge = await mech.step(client.first());
          assert.equal((await mech.step(client.final(challenge.data!))).kind, "success");
        }
      });

      it("wrong password → not-authorized at the final step", async () => {
        const mech = start();
        const client = new ScramClient(hash, "juliet", "wrong");
        const challenge = await mech.step(client.first());
        assert.equal(challenge.kind, "challenge");
        await rejects(mech.step(client.final(challenge.data!)), "not-authorized");
        await rejects(mech.step(b("c=biws")), "malformed-request");
      });

      it("unknown user → same shape of challenge, not-authorized at the same step", async () => {
        const salts: string[] = [];
        for (let i = 0; i < 2; i++) {
          const mech = start();
          const client = new ScramClient(hash, "nobody", "r0m30myr0m30");
          const challenge = await mech.step(client.first());
          assert.equal(challenge.kind, "challenge");
          const attrs = text(challenge).split(",");
          assert.equal(attrs.length, 3);
          assert.equal(attrs[2], "i=4096");
          assert.equal(Buffer.from(attrs[1].slice(2), "base64").length, 16);
          salts.push(attrs[1]);
          await rejects(mech.step(client.final(challenge.data!)), "not-authorized");
        }
        assert.equal(salts[0], salts[1], "the fake salt is stable for a username");
        const other = await start().step(new ScramClient(hash, "nobody2", "x").first());
        assert.notEqual(text(other).split(",")[1], salts[0]);
      });

      it("a user without credentials for this hash is treated as unknown", async () => {
        if (hash === "SHA-1") return;
        const mech = start();
        const client = new ScramClient(hash, "oldtimer", "secret");
        const challenge = await mech.step(client.first());
        await rejects(mech.step(client.final(challenge.data!)), "not-authorized");
      });

      it("bad base64 → incorrect-encoding", async () => {
        for (const tamper of [{ proof: "!!notbase64" }, { proof: "abc" }, { cb: "biws=" }]) {
          const mech = start();
          const client = new ScramClient(hash, "juliet", "r0m30myr0m30");
          const challenge = await mech.step(client.first());
          await rejects(mech.step(client.final(challenge.data!, tamper)), "incorrect-encoding");
        }
      });

      it("p= channel binding is refused", async () => {
        const lookup = storeOf(users);
        await rejects(start(lookup).step(b("p=tls-unique,,n=juliet,r=abcdef")), "malformed-request");
        assert.deepEqual(lookup.calls, []);
      });

      it("c= must repeat the GS2 header", async () => {
        const mech = start();
        const client = new ScramClient(hash, "juliet", "r0m30myr0m30", { gs2: "y,," });
        const challenge = await mech.step(client.first());
        await rejects(mech.step(client.final(challenge.data!, { cb: "biws" })), "not-authorized");
      });

      it("mismatched nonce → not-authorized", async () => {
        const mech = start();
        const client = new ScramClient(hash, "juliet", "r0m30myr0m30");
        const challenge = await mech.step(client.first());
        await rejects(mech.step(client.final(challenge.data!, { nonce: client.nonce + "forged" })), "not-authorized");
      });

      it("authzid of another user → invalid-authzid", async () => {
        const lookup = storeOf(users);
        const client = new ScramClient(hash, "juliet", "r0m30myr0m30", { gs2: "n,a=romeo@example.com," });
        await rejects(start(lookup).step(client.first()), "invalid-authzid");
        const client2 = new ScramClient(hash, "juliet", "r0m30myr0m30", { gs2: "n,a=romeo," });
        await rejects(start(lookup).step(client2.first()), "invalid-authzid");
        const client3 = new ScramClient(hash, "juliet", "r0m30myr0m30", { gs2: "n,a=example.com/juliet," });
        await rejects(start(lookup).step(client3.first()), "invalid-authzid");
        assert.deepEqual(lookup.calls, []);
      });

      it("rejects malformed client-first messages", async () => {
        for (const m of [
          "n,,",
          "x,,n=juliet,r=abc",
          "n,juliet,n=juliet,r=abc",
          "n,,m=ext,n=juliet,r=abc",
          "n,,r=abc,n=juliet",
          "n,,n=,r=abc",
          "n,,n=juliet,r=",
          "n,,n=juliet,r=a\u00e9b",
          "n,,n=juliet,r=abc,5=x",
          "n,,n=juliet\u0007,r=abc",
        ]) {
          await rejects(start().step(b(m)), "malformed-request");
        }
        await rejects(start().step(Buffer.from([0x6e, 0x2c, 0x2c, 0xff])), "malformed-request");
      });

      it("ignores unknown optional extensions", async () => {
        const mech = start();
        const challenge = await mech.step(b("n,,n=juliet,r=abcdef,x=ext"));
        assert.equal(challenge.kind, "challenge");
      });

      it("rejects extra or concurrent steps", async () => {
        const slow: CredentialLookup = (u) => new Promise((r) => setTimeout(() => r(users[u] ?? null), 20));
        const mech = start(slow);
        const client = new ScramClient(hash, "juliet", "r0m30myr0m30");
        const pending = mech.step(client.first());
        await rejects(mech.step(client.first()), "malformed-request");
        const challenge = await pending;
        await mech.step(client.final(challenge.data!));
        await rejects(mech.step(client.first()), "malformed-request");
      });

      it("a failing lookup → temporary-auth-failure", async () => {
        const broken: CredentialLookup = async () => {
          throw new Error("db down");
        };
        await rejects(start(broken).step(new ScramClient(hash, "juliet", "x").first()), "temporary-auth-failure");
      });
    });
  }

  describe("PLAIN", () => {
    const plain = (lookup: CredentialLookup = storeOf(users)): SaslMechanism =>
      createMechanism("PLAIN", lookup, { secure: true });

    it("accepts the right password", async () => {
      assert.deepEqual(await plain().step(b("\0juliet\0r0m30myr0m30")), { kind: "success", username: "juliet" });
      assert.deepEqual(await plain().step(b("juliet\0juliet\0r0m30myr0m30")), {
        kind: "success",
        username: "juliet",
        authzid: "juliet",
      });
    });

    it("prepares the password with SASLprep", async () => {
      for (const password of ["I\u00ADX", "\u2168", "IX"]) {
        assert.equal((await plain().step(b(`\0romeo\0${password}`))).kind, "success");
      }
    });

    it("rejects a wrong password or an unknown user with not-authorized", async () => {
      await rejects(plain().step(b("\0juliet\0wrong")), "not-authorized");
      await rejects(plain().step(b("\0nobody\0r0m30myr0m30")), "not-authorized");
    });

    it("rejects another user's authzid and malformed messages", async () => {
      await rejects(plain().step(b("romeo@example.com\0juliet\0r0m30myr0m30")), "invalid-authzid");
      for (const m of ["juliet\0r0m30myr0m30", "\0\0pw", "\0juliet\0", "a\0b\0c\0d"]) {
        await rejects(plain().step(b(m)), "malformed-request");
      }
    });

    it("empty initial response, then the credentials", async () => {
      const mech = plain();
      assert.deepEqual(await mech.step(Buffer.alloc(0)), { kind: "challenge", data: Buffer.alloc(0) });
      assert.equal((await mech.step(b("\0juliet\0r0m30myr0m30"))).kind, "success");
      await rejects(mech.step(b("\0juliet\0r0m30myr0m30")), "malformed-request");
    });
  });

  describe("mechanism selection", () => {
    it("hides PLAIN on insecure streams", () => {
      assert.deepEqual(offeredMechanisms({ secure: true }), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
      assert.deepEqual(offeredMechanisms({ secure: false }), ["SCRAM-SHA-256", "SCRAM-SHA-1"]);
      assert.deepEqual(offeredMechanisms({ secure: false, allowPlainInsecure: true }), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
      assert.deepEqual(offeredMechanisms({ secure: true, enabled: ["PLAIN", "SCRAM-SHA-1"] }), ["SCRAM-SHA-1", "PLAIN"]);
    });

    it("refuses unknown, disabled and insecure mechanisms", () => {
      const lookup = storeOf(users);
      const condition = (f: () => unknown) => {
        try {
          f();
        } catch (e) {
          return e instanceof SaslError ? e.condition : String(e);
        }
        return "none";
      };
      assert.equal(condition(() => createMechanism("DIGEST-MD5", lookup, { secure: true })), "invalid-mechanism");
      assert.equal(condition(() => createMechanism("scram-sha-1", lookup, { secure: true })), "invalid-mechanism");
      assert.equal(condition(() => createMechanism("SCRAM-SHA-1", lookup, { secure: true, enabled: ["PLAIN"] })), "invalid-mechanism");
      assert.equal(condition(() => createMechanism("PLAIN", lookup, { secure: false })), "encryption-required");
      assert.equal(createMechanism("PLAIN", lookup, { secure: false, allowPlainInsecure: true }).name, "PLAIN");
    });

    it("decodes element text strictly", () => {
      assert.deepEqual(decodeSaslData("="), Buffer.alloc(0));
      assert.deepEqual(decodeSaslData(""), Buffer.alloc(0));
      assert.equal(decodeSaslData(" biws\n").toString(), "n,,");
      assert.throws(() => decodeSaslData("bi ws"), (e: unknown) => e instanceof SaslError && e.condition === "incorrect-encoding");
      assert.throws(() => decodeSaslData("biw"), SaslError);
    });
  });
});
