// The admin commands of the `hearth` CLI against a real server process: sessions, kick, disable/enable and
// announce go through the server's admin API with the token in <dataDir>/admin.json; disable also works
// with no server running (the store), and a server started later refuses the account.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { xml, type Element } from "../src/xml/element.js";
import { RawClient, errorCondition } from "./helpers/raw-client.js";
import type { TestServer } from "./helpers/server.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = path.join(root, "bin/hearth.js");
const DOMAIN = "admin-cli.localhost";

function run(args: string[], stdin = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: root });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(stdin);
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

describe("hearth CLI admin commands against a running server", function () {
  this.timeout(60_000);
  let dir: string, config: string, c2sPort: number;
  let server: ChildProcess | null = null;
  const clients: RawClient[] = [];
  /** What RawClient needs of a test server: the c2s port and the domain. */
  let target: TestServer;

  const start = () => new Promise<ChildProcess>((resolve, reject) => {
    const p = spawn(process.execPath, [bin, "start", "--config", config], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    p.stderr!.on("data", (d) => { err += d; if (err.includes("hearth: serving")) resolve(p); });
    p.on("exit", (code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
  const stop = async () => {
    if (!server) return;
    const p = server;
    server = null;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await exited;
  };
  const login = async (user: string, resource = "desk"): Promise<RawClient> => {
    const c = await RawClient.connect(target);
    clients.push(c);
    await c.login(user, "secret-pw", resource);
    c.send(xml("presence"));
    return c;
  };
  const refusal = async (user: string): Promise<string> => {
    const c = await RawClient.connect(target);
    try {
      await c.open();
      await c.authenticate(user, "secret-pw");
      return "success";
    } catch (err) {
      const failure = (err as { element?: Element }).element;
      if (!failure) throw err;
      return failure.children.find((x): x is Element => typeof x !== "string" && x.name !== "text")!.name;
    } finally {
      c.close();
    }
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "hearth-admin-cli-"));
    c2sPort = await freePort();
    const httpPort = await freePort();
    config = path.join(dir, "hearth.yaml");
    writeFileSync(config, [
      `hosts: [${DOMAIN}]`, `dataDir: ${dir}/data`, "log: { level: warn }",
      `c2s: { bind: 127.0.0.1, port: ${c2sPort}, directTlsPort: null, requireTls: false }`,
      "s2s: { port: null, directTlsPort: null }", `http: { bind: 127.0.0.1, port: ${httpPort} }`,
      "auth: { allowPlainInsecure: true, scramIterations: 4096 }", `admin: { accounts: [root@${DOMAIN}], sampleSeconds: 1 }`, "",
    ].join("\n"));
    target = { host: DOMAIN, c2sPort } as TestServer;
    for (const u of ["alice", "bob"]) assert.equal((await run(["adduser", `${u}@${DOMAIN}`, "--config", config], "secret-pw\n")).code, 0);
  });
  after(async () => {
    for (const c of clients) c.close();
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("says there is no running server, and disables an account in the store without one", async () => {
    const none = await run(["sessions", "--config", config]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no running server found/);
    const off = await run(["disable", `bob@${DOMAIN}`, "--config", config]);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /disabled bob@admin-cli\.localhost in the store/);
    server = await start();
    assert.equal(await refusal("bob"), "account-disabled", "a server started later refuses the account");
    const on = await run(["enable", `bob@${DOMAIN}`, "--config", config]);
    assert.equal(on.code, 0, on.stderr);
    assert.equal(await refusal("bob"), "success");
  });

  it("lists sessions, kicks one, disables and enables through the running server, and announces", async () => {
    const alice = await login("alice", "laptop");
    const bob = await login("bob", "phone");
    const list = await run(["sessions", "--config", config]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^JID\s+TRANSPORT\s+CLIENT\s+ADDRESS\s+SINCE\s+NODE$/m);
    assert.match(list.stdout, new RegExp(`^alice@${DOMAIN}/laptop\\s+tcp\\s+-\\s+127\\.0\\.0\\.1`, "m"));
    assert.match(list.stdout, /2 session\(s\)/);

    const announce = await run(["announce", DOMAIN, "Back", "in", "five", "minutes", "--config", config]);
    assert.equal(announce.code, 0, announce.stderr);
    const msg = await alice.receive((el) => el.name === "message" && el.attrs.from === DOMAIN);
    assert.equal(msg.getChildText("body"), "Back in five minutes");

    const kick = await run(["kick", `alice@${DOMAIN}/laptop`, "--config", config]);
    assert.equal(kick.code, 0, kick.stderr);
    assert.equal(errorCondition(await alice.closed()), "policy-violation");
    assert.equal(bob.isClosed, false);

    const off = await run(["disable", `bob@${DOMAIN}`, "--config", config]);
    assert.equal(off.code, 0, off.stderr);
    assert.match(off.stdout, /its sessions were ended/);
    assert.equal(errorCondition(await bob.closed()), "policy-violation");
    assert.equal(await refusal("bob"), "account-disabled");
    assert.equal((await run(["enable", `bob@${DOMAIN}`, "--config", config])).code, 0);
    assert.equal(await refusal("bob"), "success");
  });

  it("exits 2 on usage errors and 1 with the server's reason on a failed action", async () => {
    const usage = await run(["kick", "--config", config]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /kick takes exactly one JID/);
    assert.equal((await run(["announce", DOMAIN, "--config", config])).code, 2);
    const nobody = await run(["kick", `nobody@${DOMAIN}`, "--config", config]);
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /has no session/);
    const unknown = await run(["disable", `ghost@${DOMAIN}`, "--config", config]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no account ghost@/);
  });
});
