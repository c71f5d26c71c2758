// The `hearth` command line as an operator uses it: real processes, real config files, real sockets.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { client, xml } from "@xmpp/client";

const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = path.join(root, "bin/hearth.js");

function run(args: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: opts.cwd ?? root, env: { ...process.env, ...opts.env } });
    let stdout = "", stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    p.stdin.end(opts.stdin ?? "");
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

interface Instance { dir: string; config: string; port: number; domain: string }

async function instance(domain: string): Promise<Instance> {
  const dir = mkdtempSync(path.join(tmpdir(), "hearth-cli-"));
  const port = await freePort();
  const config = path.join(dir, "hearth.yaml");
  writeFileSync(config, [
    `hosts: [${domain}]`,
    `dataDir: ${dir}/data`,
    "log: { level: warn }",
    `c2s: { bind: 127.0.0.1, port: ${port}, directTlsPort: null, requireTls: false }`,
    "s2s: { port: null, directTlsPort: null }",
    "http: { port: null }",
    "auth: { allowPlainInsecure: true }",
    "registration: { policy: open }",
    "",
  ].join("\n"));
  return { dir, config, port, domain };
}

function startProcess(inst: Instance): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, "start", "--config", inst.config], { cwd: inst.dir, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    p.stderr!.on("data", (d) => {
      err += d;
      if (err.includes("hearth: serving")) resolve(p);
    });
    p.on("exit", (code) => reject(new Error(`server exited with ${code}: ${err}`)));
  });
}

async function xmppjs(inst: Instance, username: string) {
  const c = client({ service: `xmpp://127.0.0.1:${inst.port}`, domain: inst.domain, username, password: "secret-pw", resource: "t" });
  c.on("error", () => {});
  await c.start();
  return c;
}

describe("hearth CLI", function () {
  this.timeout(30_000);
  let inst: Instance;
  const tlsCheck = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
  before(async () => {
    inst = await instance("cli.localhost");
    // @xmpp/client takes the offered STARTTLS; the instance has its generated self-signed certificate.
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";
  });
  after(() => {
    rmSync(inst.dir, { recursive: true, force: true });
    if (tlsCheck === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = tlsCheck;
  });

  it("manages accounts: adduser, users, passwd, deluser", async () => {
    const add = await run(["adduser", "alice@cli.localhost", "--config", inst.config], { stdin: "secret-pw\n" });
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /created alice@cli\.localhost/);
    await run(["adduser", "bob@cli.localhost", "--config", inst.config], { stdin: "secret-pw\n" });
    const dup = await run(["adduser", "alice@cli.localhost", "--config", inst.config], { stdin: "secret-pw\n" });
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /exists already/);
    const list = await run(["users", "--config", inst.config]);
    assert.deepEqual(list.stdout.trim().split("\n"), ["alice@cli.localhost", "bob@cli.localhost"]);
    const pw = await run(["passwd", "bob@cli.localhost", "--config", inst.config], { stdin: "another-pw\n" });
    assert.equal(pw.code, 0, pw.stderr);
    const del = await run(["deluser", "bob@cli.localhost", "--config", inst.config]);
    assert.equal(del.code, 0);
    assert.equal((await run(["users", "--config", inst.config])).stdout.trim(), "alice@cli.localhost");
  });

  it("gives clear messages and non-zero exits for bad input", async () => {
    const unknown = await run(["frobnicate"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const badAddr = await run(["adduser", "not an address", "--config", inst.config]);
    assert.equal(badAddr.code, 2);
    const otherHost = await run(["adduser", "x@elsewhere.example", "--config", inst.config], { stdin: "secret-pw\n" });
    assert.equal(otherHost.code, 1);
    assert.match(otherHost.stderr, /not one of the configured hosts/);
    const weak = await run(["adduser", "carol@cli.localhost", "--config", inst.config], { stdin: "x\n" });
    assert.equal(weak.code, 1);
    assert.match(weak.stderr, /at least/);
    const missing = await run(["start", "--config", path.join(inst.dir, "nope.yaml")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);
    const badFile = path.join(inst.dir, "bad.yaml");
    writeFileSync(badFile, "c2s:\n  port: lots\n");
    const bad = await run(["check-config", "--config", badFile]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /c2s\.port/);
    const badEnv = await run(["check-config", "--config", inst.config], { env: { HEARTH_LIMITS__MAX_STANZA_BYTES: "many" } });
    assert.equal(badEnv.code, 1);
    assert.match(badEnv.stderr, /HEARTH_LIMITS__MAX_STANZA_BYTES/);
    const ok = await run(["check-config", "--config", inst.config]);
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /configuration OK/);
  });

  it("runs two instances side by side and keeps offline messages across a SIGKILL of the process", async () => {
    const other = await instance("other.localhost");
    await run(["adduser", "alice@cli.localhost", "--config", inst.config], { stdin: "secret-pw\n" });
    await run(["adduser", "carol@cli.localhost", "--config", inst.config], { stdin: "secret-pw\n" });
    await run(["adduser", "dave@other.localhost", "--config", other.config], { stdin: "secret-pw\n" });
    let server = await startProcess(inst);
    const second = await startProcess(other);
    try {
      const dave = await xmppjs(other, "dave");
      await dave.stop();
      const alice = await xmppjs(inst, "alice");
      await alice.send(xml("message", { to: "carol@cli.localhost", type: "chat" }, xml("body", {}, "survives a crash")));
      await alice.iqCaller.get(xml("ping", { xmlns: "urn:xmpp:ping" }), "cli.localhost");
      await alice.stop();
      server.kill("SIGKILL");
      await new Promise((r) => server.once("exit", r));
      server = await startProcess(inst);
      const carol = await xmppjs(inst, "carol");
      const got = new Promise<any>((resolve) => carol.on("stanza", (st) => { if (st.is("message")) resolve(st); }));
      await carol.send(xml("presence"));
      const msg = await got;
      assert.equal(msg.getChildText("body"), "survives a crash");
      await carol.stop();
    } finally {
      server.kill("SIGTERM");
      second.kill("SIGTERM");
      await Promise.all([new Promise((r) => server.once("exit", r)), new Promise((r) => second.once("exit", r))]);
      rmSync(other.dir, { recursive: true, force: true });
    }
  });

  it("stops cleanly on SIGTERM", async () => {
    const p = await startProcess(inst);
    p.kill("SIGTERM");
    const code = await new Promise((r) => p.once("exit", r));
    assert.equal(code, 0);
  });
});
