// Interop: slixmpp's ComponentXMPP (an independent XEP-0114 implementation) connects to hearth's component
// port as an echo gateway; a slixmpp client finds it in disco, asks its identity and gets its echo. A
// wrong secret gets the not-authorized stream error.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startTestServer, type TestServer } from "../test/helpers/server.js";

const PYTHON = "/usr/bin/python3";
const script = fileURLToPath(new URL("../../conformance/slixmpp/component.py", import.meta.url));
const GATEWAY = "echo.localhost";
const SECRET = "echo gateway shared secret";

function runPython(args: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(PYTHON, args, { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
  });
}

describe("interop: slixmpp ComponentXMPP, XEP-0114 Jabber Component Protocol", function () {
  this.timeout(70_000);
  let ts: TestServer;
  before(async function () {
    assert.ok(existsSync(PYTHON), "Debian's /usr/bin/python3 is required (with python3-slixmpp)");
    ts = await startTestServer({ components: { bind: "127.0.0.1", port: 0, secrets: { [GATEWAY]: SECRET } } });
    await ts.accounts.create("localhost", "alice", "password");
  });
  after(() => ts?.stop());

  it("an echo component serves its domain: listed in disco, answers disco#info, echoes a message; a wrong secret is refused", async () => {
    const port = ts.server.modules.service("components")!.port!;
    const out = await runPython([script, "127.0.0.1", String(ts.c2sPort), String(port), GATEWAY, SECRET, "alice@localhost", "password"]);
    const result = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(result.error, undefined, result.error);
    assert.ok(result.server_items.includes(GATEWAY), `the server's disco#items: ${result.server_items}`);
    assert.deepEqual(result.identity, [["gateway", "echo", "Echo"]], "the identity comes from the component's own disco plugin");
    assert.equal(result.echo, "echo: hello");
    assert.equal(result.echo_from, `bot@${GATEWAY}`);
    assert.equal(result.wrong_secret, "not-authorized");
  });
});
