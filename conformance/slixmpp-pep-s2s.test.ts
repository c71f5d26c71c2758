// Interop: slixmpp's PEP plugins (XEP-0060/0163/0115, an implementation that is not ours) on two hearth
// servers federating over s2s: OMEMO devicelists published with publish-options reach the contact on the
// other server through +notify from slixmpp's own caps, as the last item and as live notifications.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { TestServer } from "../test/helpers/server.js";
import { federatedPair } from "../test/helpers/s2s-peer.js";
import { friends, login } from "../test/helpers/pep.js";

const PYTHON = "/usr/bin/python3";
const script = fileURLToPath(new URL("../../conformance/slixmpp/pep_s2s.py", import.meta.url));

describe("interop: slixmpp XEP-0163 PEP across federation", function () {
  this.timeout(60_000);
  let a: TestServer;
  let b: TestServer;
  before(async function () {
    assert.ok(existsSync(PYTHON), "Debian's /usr/bin/python3 is required (with python3-slixmpp)");
    [a, b] = await federatedPair();
  });
  after(async () => { await Promise.all([a?.stop(), b?.stop()]); });

  it("OMEMO devicelists cross the link both ways through slixmpp's +notify caps, last item first", async () => {
    const alice = await login(a, "alice"), bob = await login(b, "bob");
    await friends(alice, bob, 15_000);
    alice.close(); bob.close();
    const out = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, [script, String(a.c2sPort), String(b.c2sPort), "alice@a.test", "bob@b.test", "password"], { timeout: 45_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
    });
    const result = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(result.error, undefined, result.error);
    assert.deepEqual(result.bob_heard[0], ["1"], "Bob's first event is Alice's last item");
    assert.deepEqual(result.alice_heard[0], ["2"], "Alice's first event is Bob's last item");
    assert.ok(result.bob_heard.some((ids: string[]) => ids.join() === "1,3"));
    assert.ok(result.alice_heard.some((ids: string[]) => ids.join() === "2,4"));
  });
});
