// The process-level guard a server installs (src/server.ts), in a real process of its own: a dropped
// rejection is logged and the node keeps serving; an exception thrown to the event loop stops the node
// with exit code 1 (its state is unknown; the store has everything acknowledged).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

const dist = new URL("../src/", import.meta.url).href;

function child(mode: "reject" | "throw", dataDir: string) {
  const script = `
    const { startServer } = await import(${JSON.stringify(dist + "server.js")});
    const { loadConfig } = await import(${JSON.stringify(dist + "config/config.js")});
    const config = loadConfig({ file: null, env: {}, cwd: ${JSON.stringify(dataDir)}, overrides: {
      hosts: ["localhost"], dataDir: ${JSON.stringify(dataDir)}, log: { level: "error" },
      c2s: { bind: "127.0.0.1", port: 0, directTlsPort: null, requireTls: false }, http: { port: null }, s2s: { port: null, directTlsPort: null },
      // No extensions: the mobile adapter, which needs the blocking, conversations and retraction modules, is off.
      modules: { disabled: ["mobile"] },
    } });
    const server = await startServer(config, []);
    process.stderr.write("port " + server.ports.c2s + "\\n");
    ${mode === "reject" ? `Promise.reject(new Error("a dropped store failure"));` : `setTimeout(() => { throw new Error("a thrown bug"); }, 20);`}
  `;
  const p = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  p.stdout.on("data", (d) => (stdout += d));
  const port = new Promise<number>((resolve, reject) => {
    p.stderr.on("data", (d) => {
      stderr += d;
      const m = /port (\d+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    p.on("exit", () => reject(new Error(`exited early: ${stderr}`)));
  });
  const exit = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
  return { p, port, exit, out: () => stdout, err: () => stderr };
}

function streamHeader(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, "127.0.0.1", () => s.write("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"));
    let got = "";
    s.on("data", (d) => { got += d; if (got.includes("<stream:features")) { s.destroy(); resolve(got); } });
    s.on("error", reject);
  });
}

describe("process guard", function () {
  this.timeout(30_000);
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), "hearth-guard-")); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("logs an unhandled rejection and keeps serving", async () => {
    const c = child("reject", dir);
    const port = await c.port;
    await new Promise((r) => setTimeout(r, 200));
    assert.match(await streamHeader(port), /<stream:features/);
    assert.match(c.out(), /unhandled promise rejection/);
    assert.match(c.out(), /a dropped store failure/);
    c.p.kill("SIGTERM");
    await c.exit;
  });

  it("stops with exit code 1 after an uncaught exception, logging it first", async () => {
    const c = child("throw", dir);
    await c.port;
    assert.equal(await c.exit, 1);
    assert.match(c.out(), /uncaught exception/);
    assert.match(c.out(), /a thrown bug/);
  });
});
