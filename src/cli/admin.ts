// The CLI commands that act on a running server: they call its admin API (src/admin/console.ts) at the
// address and with the bearer token it wrote to <dataDir>/admin.json (mode 0600), so whoever may read the
// data directory may run them. disable/enable also work without a running server: they write the store,
// and every running node ends the disabled account's sessions within admin.sampleSeconds.
import { readFileSync } from "node:fs";
import type { Config } from "../config/config.js";
import { adminFile, type AdminFile } from "../admin/index.js";
import type { SessionInfo } from "../admin/service.js";
import { openStore } from "../storage/open.js";
import { createLoginService } from "../auth/login.js";
import { tryParseJid } from "../jid/jid.js";

/** A failed admin command (exit code 1), with the message to print. */
export class AdminCommandError extends Error {}

/** The running server's admin API, or null when none wrote its admin.json. */
function serverOf(config: Config): AdminFile | null {
  let text: string;
  try {
    text = readFileSync(adminFile(config.dataDir), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new AdminCommandError(`cannot read ${adminFile(config.dataDir)}: ${(err as Error).message} (run as the server's user)`);
  }
  try {
    const f = JSON.parse(text) as AdminFile;
    if (typeof f.url === "string" && typeof f.token === "string") return f;
  } catch { /* below */ }
  throw new AdminCommandError(`${adminFile(config.dataDir)} is damaged; restart the server to write it again`);
}

class Unreachable extends AdminCommandError {}

async function call<T>(server: AdminFile, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(path, server.url), {
      method: body === undefined ? "GET" : "POST",
      headers: { authorization: `Bearer ${server.token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new Unreachable(`the server at ${server.url} does not answer (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}); is it running?`);
  }
  const answer = await res.json().catch(() => ({})) as T & { error?: string };
  if (!res.ok) throw new AdminCommandError(answer.error ?? `the server answered ${res.status}`);
  return answer;
}

function running(config: Config): AdminFile {
  const server = serverOf(config);
  if (server === null) throw new AdminCommandError(`no running server found: ${adminFile(config.dataDir)} does not exist (is the server started with this configuration, with http.port set?)`);
  return server;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n") + "\n";
}

export async function sessionsCommand(config: Config, out: NodeJS.WritableStream): Promise<number> {
  const state = await call<{ sessions: SessionInfo[] }>(running(config), "api/state");
  const rows = [["JID", "TRANSPORT", "CLIENT", "ADDRESS", "SINCE", "NODE"]];
  for (const s of state.sessions) {
    rows.push([s.jid, s.transport + (s.secure ? "+tls" : ""), s.client ?? "-", s.address, s.since ? new Date(s.since).toISOString() : "-", s.node]);
  }
  out.write(table(rows));
  out.write(`${state.sessions.length} session(s)\n`);
  return 0;
}

export async function kickCommand(config: Config, jid: string, out: NodeJS.WritableStream): Promise<number> {
  const r = await call<{ kicked: number }>(running(config), "api/kick", { jid });
  out.write(`kicked ${jid} (${r.kicked} session${r.kicked === 1 ? "" : "s"})\n`);
  return 0;
}

export async function announceCommand(config: Config, host: string, text: string, out: NodeJS.WritableStream): Promise<number> {
  const r = await call<{ sent: number }>(running(config), "api/announce", { host, body: text });
  out.write(`announcement sent to ${r.sent} session(s) of ${host}\n`);
  return 0;
}

/**
 * Disables or enables through the running server (which ends the sessions at once); without one, in the
 * store, which every node reads at each login and sweeps for live sessions every admin.sampleSeconds.
 */
export async function disableCommand(config: Config, address: string, disable: boolean, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const verb = disable ? "disable" : "enable";
  const server = serverOf(config);
  if (server !== null) {
    try {
      const r = await call<{ changed: boolean }>(server, `api/${verb}`, { jid: address });
      out.write(`${verb}d ${address}${r.changed ? "" : ` (it was ${verb}d already)`}${disable ? "; its sessions were ended" : ""}\n`);
      return 0;
    } catch (e) {
      if (!(e instanceof Unreachable)) throw e;
      err.write(`hearth: ${e.message}; writing the store directly\n`);
    }
  }
  const j = tryParseJid(address);
  if (!j || !j.local || j.resource) throw new AdminCommandError(`"${address}" is not a USER@HOST address`);
  if (!config.hosts.includes(j.domain)) throw new AdminCommandError(`${j.domain} is not one of the configured hosts (${config.hosts.join(", ")})`);
  const store = await openStore(config);
  try {
    if ((await store.accounts.get(j.domain, j.local)) === null) throw new AdminCommandError(`no account ${j.bareString()}`);
    const changed = await createLoginService(store, config.auth).setDisabled(j.domain, j.local, disable);
    out.write(`${verb}d ${j.bareString()} in the store${changed ? "" : ` (it was ${verb}d already)`}`
      + (disable ? `; running servers end its sessions within ${config.admin.sampleSeconds} s\n` : "\n"));
    return 0;
  } finally {
    await store.close();
  }
}
