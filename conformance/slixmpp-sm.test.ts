// Interop: slixmpp's XEP-0198 client (an independent implementation) resumes a session after an abrupt
// loss of its connection and gets every message exactly once, in order, also those sent while it was away.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { xml } from "../src/xml/element.js";
import { startTestServer, type TestServer } from "../test/helpers/server.js";
import { onlineUser } from "../test/helpers/raw-client.js";

const PYTHON = "/usr/bin/python3";
const script = fileURLToPath(new URL("../../conformance/slixmpp/resume.py", import.meta.url));

describe("interop: slixmpp stream management (XEP-0198)", function () {
  this.timeout(40_000);
  let ts: TestServer;
  before(async function () {
    assert.ok(existsSync(PYTHON), "Debian's /usr/bin/python3 is required (with python3-slixmpp)");
    ts = await startTestServer();
    await ts.accounts.create("localhost", "romeo", "password");
  });
  after(() => ts?.stop());

  it("resumes after the connection dropped: every message once, in order", async () => {
    const juliet = await onlineUser(ts, "juliet");
    const child = spawn(PYTHON, [script, "127.0.0.1", String(ts.c2sPort), "romeo@localhost", "password"]);
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => { stderr += d.toString(); });
    let romeo = "";
    let last = "";
    const say = (body: string) => juliet.send(xml("message", { to: romeo, type: "chat" }, xml("body", null, body)));
    for await (const line of createInterface({ input: child.stdout })) {
      last = line;
      if (line.startsWith("READY ")) {
        romeo = line.slice(6);
        say("before");
      } else if (line === "DOWN") {
        // Sent while the client has no connection: held by the hibernated session.
        say("while away 1");
        say("while away 2");
      } else if (line === "RESUMED") {
        say("after");
      }
    }
    const code = await new Promise<number | null>((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once("exit", resolve)));
    assert.equal(code, 0, `${last}\n${stderr.split("\n").filter((l) => !l.includes("stringprep")).join("\n")}`);
    const result = JSON.parse(last);
    assert.equal(result.enabled, true, "slixmpp enabled stream management with resumption");
    assert.equal(result.resumed, true, "slixmpp resumed its session");
    assert.equal(result.sessions, 1, "no new session was started");
    assert.deepEqual(result.bodies, ["before", "while away 1", "while away 2", "after"]);
    juliet.close();
  });
});
