// Interop: slixmpp's XEP-0363 plugin (Python, an independent implementation) finds hearth's upload
// service, uploads through a slot and downloads byte-identical; the file is the same for a Node client.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startTestServer, type TestServer } from "../test/helpers/server.js";

const PYTHON = "/usr/bin/python3";
const script = fileURLToPath(new URL("../../conformance/slixmpp/upload.py", import.meta.url));

function runPython(args: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(PYTHON, args, { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
  });
}

describe("interop: slixmpp XEP-0363 HTTP File Upload", function () {
  this.timeout(40_000);
  let ts: TestServer;
  before(async function () {
    assert.ok(existsSync(PYTHON), "Debian's /usr/bin/python3 is required (with python3-slixmpp and python3-aiohttp)");
    ts = await startTestServer({ modules: { upload: { maxFileSize: 2_000_000 } } });
    await ts.accounts.create("localhost", "romeo", "password");
  });
  after(() => ts?.stop());

  it("discovers the service, uploads through a slot and downloads the same bytes; oversized is refused", async () => {
    const out = await runPython([script, "127.0.0.1", String(ts.c2sPort), "romeo@localhost", "password", "1234567"]);
    const result = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(result.error, undefined, result.error);
    assert.equal(result.service, "upload.localhost");
    assert.equal(result.max_file_size, 2_000_000);
    assert.match(result.url, /^http:\/\/localhost:\d+\/upload\/[A-Za-z0-9_-]+\/portrait%20of%20juliet\.png$/);
    assert.equal(result.sha256_down, result.sha256_up, "slixmpp downloaded other bytes than it uploaded");
    assert.equal(result.content_type, "image/png");
    assert.equal(result.too_big_local, true);
    assert.deepEqual(result.too_big_error, ["not-acceptable", "2000000"]);
    // A second, independent client sees the same file.
    const res = await fetch(result.url);
    assert.equal(createHash("sha256").update(Buffer.from(await res.arrayBuffer())).digest("hex"), result.sha256_up);
  });
});
