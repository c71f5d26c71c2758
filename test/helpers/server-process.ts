// A server as a child process on a data directory that outlives it: for tests that kill the process
// (SIGKILL) and start it again on the same data, or run several nodes of a cluster. Shaped like a
// TestServer so RawClient can connect to it.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { freePort } from "./mobile-client.js";
import { RawClient } from "./raw-client.js";
import type { TestServer } from "./server.js";
import { xml, type Element } from "../../src/xml/element.js";

const SM = "urn:xmpp:sm:3";
const isChat = (el: Element) => el.name === "message" && el.getChild("body") !== undefined;

const bin = path.join(fileURLToPath(new URL("../../../", import.meta.url)), "bin/hearth.js");

export class ServerProcess {
  readonly host = "localhost";
  readonly tlsPort = 0;
  proc: ChildProcess | null = null;
  private err = "";

  private constructor(readonly name: string, readonly dir: string, readonly c2sPort: number, readonly config: string) {}

  /**
   * A data directory and a config: the c2s port on loopback without TLS (plus `c2s`, more keys of that
   * section, e.g. "smResumeSeconds: 2"), `extra` YAML lines after it.
   */
  static async create(name: string, extra: string[], c2s = ""): Promise<ServerProcess> {
    const dir = mkdtempSync(path.join(tmpdir(), `hearth-${name}-`));
    const c2sPort = await freePort();
    const config = path.join(dir, "hearth.yaml");
    writeFileSync(config, [
      "hosts: [localhost]",
      `dataDir: ${dir}/data`,
      "log: { level: warn }",
      `c2s: { bind: 127.0.0.1, port: ${c2sPort}, directTlsPort: null, requireTls: false${c2s ? `, ${c2s}` : ""} }`,
      "s2s: { port: null, directTlsPort: null }",
      "http: { port: null }",
      "auth: { allowPlainInsecure: true, maxFailures: 0 }",
      "limits: { maxConnectionsPerIp: 0, stanzasPerSecond: 0 }",
      ...extra,
      "",
    ].join("\n"));
    return new ServerProcess(name, dir, c2sPort, config);
  }

  /** What the processes wrote to stderr and their log, for failure messages and log assertions. */
  output(): string { return this.err; }

  async start(): Promise<void> {
    const proc = spawn(process.execPath, [bin, "start", "--config", this.config], { cwd: this.dir, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    // The log (stdout) goes into the same record as stderr.
    proc.stdout!.on("data", (d) => { this.err += d; });
    let mine = "";
    await new Promise<void>((resolve, reject) => {
      proc.stderr!.on("data", (d) => {
        mine += d;
        this.err += d;
        if (mine.includes("hearth: serving")) resolve();
      });
      proc.once("exit", (code, signal) => reject(new Error(`${this.name} exited (${code ?? signal}): ${mine}`)));
      setTimeout(() => reject(new Error(`${this.name} did not start within 20 s: ${mine}`)), 20_000).unref();
    });
  }

  /** Ends the process with `signal` and waits for it. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill(signal);
    await exited;
  }

  /** Adds an account with the CLI (the server may be running: the store allows it). */
  async addUser(jid: string, password: string): Promise<void> {
    const p = spawn(process.execPath, [bin, "adduser", jid, "--config", this.config], { cwd: this.dir, stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    p.stderr!.on("data", (d) => { err += d; });
    p.stdin!.end(`${password}\n`);
    const code = await new Promise<number | null>((r) => p.on("exit", r));
    if (code !== 0) throw new Error(`adduser ${jid}: ${err}`);
  }

  async dispose(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- clients of a server process (XEP-0198 dialogues) ----

async function connect(server: ServerProcess): Promise<RawClient> {
  return RawClient.connect(server as unknown as TestServer);
}

/** Logged in, resumable stream management enabled, available; resolves with the resumption id. */
export async function smLogin(server: ServerProcess, user: string, resource: string): Promise<{ c: RawClient; id: string }> {
  const c = await connect(server);
  await c.login(user, "password", resource);
  c.send(xml("enable", { xmlns: SM, resume: "true" }));
  const enabled = await c.receive((el) => el.attrs.xmlns === SM && (el.name === "enabled" || el.name === "failed"));
  assert.equal(enabled.name, "enabled", enabled.toString());
  c.send(xml("presence"));
  await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid);
  return { c, id: enabled.attrs.id };
}

export async function plainLogin(server: ServerProcess, user: string, resource: string, available = true): Promise<RawClient> {
  const c = await connect(server);
  await c.login(user, "password", resource);
  if (available) {
    c.send(xml("presence"));
    await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid);
  }
  return c;
}

export async function resumeOn(server: ServerProcess, user: string, previd: string, h: number): Promise<{ c: RawClient; answer: Element }> {
  const c = await connect(server);
  await c.open();
  await c.authenticate(user, "password");
  await c.open();
  c.send(xml("resume", { xmlns: SM, previd, h: String(h) }));
  const answer = await c.receive((el) => el.attrs.xmlns === SM && (el.name === "resumed" || el.name === "failed"), 10_000);
  return { c, answer };
}

/** Every chat body that arrives until `ms` pass without one. */
export async function bodiesUntilQuiet(c: RawClient, ms = 1500): Promise<Element[]> {
  const out: Element[] = [];
  for (;;) {
    try { out.push(await c.receive(isChat, ms)); } catch { return out; }
  }
}
