// A private Redis for the test run: the system `redis-server` on a free loopback port, in a temp directory,
// without persistence. Nothing touches a Redis the developer already runs (e.g. on port 6379).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export interface PrivateRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** The redis-server binary, or a clear error naming the package to install. */
export function findRedisServer(): string {
  const found = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const bin = found.status === 0 ? found.stdout.trim() : "";
  if (!bin) {
    throw new Error("redis-server not found on PATH. Install the Debian package `redis-server` " +
      "(apt-get install redis-server), which .ci/run does on CI.");
  }
  return bin;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    let got = "";
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.setTimeout(500, () => done(false));
    s.once("error", () => done(false));
    s.on("data", (d) => { got += d; if (got.includes("\r\n")) done(got.startsWith("+PONG")); });
    s.once("connect", () => s.write("PING\r\n"));
  });
}

export async function startRedis(): Promise<PrivateRedis> {
  const bin = findRedisServer();
  const dir = mkdtempSync(path.join(tmpdir(), "hearth-redis-"));
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    let log = "";
    const child: ChildProcess = spawn(bin, [
      "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--dir", dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => { log += d; });
    child.stderr!.on("data", (d) => { log += d; });
    let exited = false;
    child.once("exit", () => { exited = true; });
    const deadline = Date.now() + 10_000;
    while (!exited && Date.now() < deadline && !(await ping(port))) await new Promise((r) => setTimeout(r, 50));
    if (!exited && (await ping(port))) {
      const onExit = () => { child.kill("SIGKILL"); rmSync(dir, { recursive: true, force: true }); };
      process.once("exit", onExit);
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        async stop() {
          process.off("exit", onExit);
          if (child.exitCode === null && child.signalCode === null) {
            const gone = new Promise((r) => child.once("exit", r));
            child.kill("SIGTERM");
            await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
          }
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    child.kill("SIGKILL");
    // Another process may have taken the port between freePort() and the bind: try another one.
    if (attempt >= 3) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`redis-server did not start: ${log.trim().slice(-2000)}`);
    }
  }
}
