// Interop: slixmpp's XEP-0050 and XEP-0133 plugins (an independent ad-hoc commands client) run hearth's
// service administration commands with their own form handling: list, add-user, counts, announce,
// disable-user (the user's stream ends) and reenable-user; a non-admin is refused.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startTestServer, type TestServer } from "../test/helpers/server.js";

const PYTHON = "/usr/bin/python3";
const script = fileURLToPath(new URL("../../conformance/slixmpp/adhoc.py", import.meta.url));

function runPython(args: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(PYTHON, args, { timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
  });
}

describe("interop: slixmpp XEP-0050 / XEP-0133 service administration", function () {
  this.timeout(70_000);
  let ts: TestServer;
  before(async function () {
    assert.ok(existsSync(PYTHON), "Debian's /usr/bin/python3 is required (with python3-slixmpp)");
    ts = await startTestServer({ admin: { accounts: ["root@localhost"] } });
    await ts.accounts.create("localhost", "root", "password");
    await ts.accounts.create("localhost", "alice", "password");
  });
  after(() => ts?.stop());

  it("lists and runs the admin commands from slixmpp, and refuses a non-admin", async () => {
    const out = await runPython([script, "127.0.0.1", String(ts.c2sPort), "root@localhost", "alice@localhost", "password"]);
    const result = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(result.error, undefined, result.error);
    for (const c of ["add-user", "announce", "change-user-password", "delete-user", "disable-user", "end-user-session", "get-online-users-list", "get-online-users-num", "reenable-user"]) {
      assert.ok(result.commands.includes(c), `${c} is listed`);
    }
    assert.equal(result.non_admin, "forbidden");
    assert.match(result.added, /mercutio@localhost was created/);
    assert.equal(await ts.accounts.exists("localhost", "mercutio"), true);
    assert.equal(result.online_num, 2);
    assert.deepEqual(result.online_list, ["alice@localhost", "root@localhost"]);
    assert.deepEqual(result.announcement, { type: "headline", subject: "Notice", body: "Maintenance at noon" });
    assert.equal(result.alice_stream_error, "policy-violation");
    assert.equal(result.reenabled_login, true);
  });
});
