// Interop: slixmpp's PEP plugins (an independent implementation of XEP-0060/0163/0084/0115/0223/0048/0054)
// against hearth: avatar published and heard through +notify from slixmpp's own entity caps, the avatar in
// the vCard (XEP-0398), XEP-0048 bookmarks read as XEP-0402 items, XEP-0223 private storage.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startTestServer, type TestServer } from "../test/helpers/server.js";
import { friends, login } from "../test/helpers/pep.js";

const PYTHON = "/usr/bin/python3";
const script = fileURLToPath(new URL("../../conformance/slixmpp/pep.py", import.meta.url));

function runPython(args: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(PYTHON, args, { timeout: 45_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
  });
}

describe("interop: slixmpp PEP, avatars, bookmarks", function () {
  this.timeout(60_000);
  let ts: TestServer;
  before(async function () {
    assert.ok(existsSync(PYTHON), "Debian's /usr/bin/python3 is required (with python3-slixmpp)");
    ts = await startTestServer();
  });
  after(() => ts?.stop());

  it("publishes an avatar heard by a contact's caps, converts it to the vCard, and keeps bookmarks both ways", async () => {
    // Alice and Bob share presence subscriptions (set up over a raw client; the roster is what persists).
    const alice = await login(ts, "alice"), bob = await login(ts, "bob");
    await friends(alice, bob);
    alice.close(); bob.close();
    const out = await runPython([script, "127.0.0.1", String(ts.c2sPort), "alice@localhost", "bob@localhost", "password"]);
    const result = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(result.error, undefined, result.error);
    assert.match(result.metadata_id, /^[0-9a-f]{40}$/, "Bob's slixmpp heard the avatar metadata through +notify");
    assert.equal(result.avatar_ok, true, "the avatar data retrieved is the bytes published");
    assert.equal(result.vcard_ok, true, "the vCard PHOTO is the same picture (XEP-0398)");
    assert.deepEqual(result.bookmark_items, ["verona@conference.localhost"], "XEP-0048 bookmarks are XEP-0402 items");
    assert.deepEqual(result.private_items, ["current"]);
    assert.equal(result.publish_options, "not-allowed", "XEP-0223 data is closed to contacts");
  });
});
