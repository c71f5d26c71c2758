// The `hearth` command line: start the server and manage accounts. Exit codes: 0 ok, 1 failure, 2 usage.
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { loadConfig, ConfigError, type Config } from "../config/config.js";
import { schemaWithModules, withoutSecrets } from "../config/schema.js";
import { serverModules, startServer } from "../server.js";
import { batchHelperThreads, tuneV8 } from "./tuning.js";
import { migrateStore, openStore } from "../storage/open.js";
import { AccountService, AccountError } from "../auth/accounts.js";
import { createLoginService } from "../auth/login.js";
import { HookBuses } from "../events/hooks.js";
import { SessionRegistry } from "../sessions/registry.js";
import { tryParseJid } from "../jid/jid.js";
import type { ModuleDefinition } from "../modules/module.js";
import { SchemaOutdatedError, SchemaTooNewError } from "../storage/migrate.js";
import { federationReport } from "../s2s/report.js";
import { componentsReport } from "../component/report.js";
import { importCertificates } from "./cert.js";
import { AdminCommandError, announceCommand, disableCommand, kickCommand, sessionsCommand } from "./admin.js";

const USAGE = `Usage: hearth <command> [--config FILE] [options]

Commands:
  start                       run the server (default config: ./hearth.yaml if present, else built-in defaults)
  adduser USER@HOST           create an account; the password is read from stdin (or prompted)
  passwd USER@HOST            change an account's password (read like adduser)
  deluser USER@HOST           remove an account and everything it owns
  users [HOST]                list the accounts of a host (default: the first configured host)
  check-config                validate the configuration and print the effective values
  migrate                     apply the database schema migrations this version brings (start does too)
  sessions                    list the online sessions of a running server (JID, transport, client, address)
  kick JID                    end a session (full JID) or all sessions of an account (bare JID)
  disable USER@HOST           refuse every login of the account and end its sessions (also without a
                              running server: written to the store, applied by running servers in seconds)
  enable USER@HOST            allow the account to log in again
  announce HOST TEXT          send TEXT to every online user of HOST (a headline from the server domain)
  cert import DIR             copy certificates from a certbot directory (/etc/letsencrypt), chosen per
                              served domain by subjectAltName; a running server takes them on SIGHUP

Options:
  --config FILE               YAML configuration file (also $HEARTH_CONFIG)
  --password-file FILE        read the password from a file instead of stdin
  -h, --help                  this text

Every configuration key can also be set with an environment variable, e.g. HEARTH_C2S__PORT=5322.`;

export interface CliDeps {
  extensions: ModuleDefinition<any>[];
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
}

class UsageError extends Error {}

export async function main(argv: string[], deps: CliDeps): Promise<number> {
  const out = deps.stdout ?? process.stdout;
  const err = deps.stderr ?? process.stderr;
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: { config: { type: "string" }, "password-file": { type: "string" }, help: { type: "boolean", short: "h" } },
    });
  } catch (e) {
    err.write(`hearth: ${(e as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || !command) {
    (parsed.values.help ? out : err).write(USAGE + "\n");
    return parsed.values.help ? 0 : 2;
  }
  try {
    const config = () => readConfig(parsed.values.config, deps.extensions);
    switch (command) {
      case "start": return await start(config(), deps, err);
      case "check-config": {
        const c = config();
        out.write(JSON.stringify(withoutSecrets(c, schemaWithModules(serverModules(deps.extensions))), null, 2) + "\n");
        const federation = federationReport(c);
        for (const line of federation.lines) out.write(line + "\n");
        for (const w of federation.warnings) out.write(`warning: ${w}\n`);
        const components = componentsReport(c);
        for (const line of components.lines) out.write(line + "\n");
        for (const w of components.warnings) out.write(`warning: ${w}\n`);
        out.write("configuration OK\n");
        return 0;
      }
      case "migrate": {
        if (rest.length !== 0) throw new UsageError("migrate takes no arguments");
        const report = await migrateStore(config());
        const versions = report.applied.length === 0
          ? `already at version ${report.to}`
          : `version ${report.from} → ${report.to} (applied ${report.applied.join(", ")})`;
        out.write(`${report.driver} schema ${versions}\n`);
        return 0;
      }
      case "adduser": case "passwd": case "deluser": {
        if (rest.length !== 1) throw new UsageError(`${command} takes exactly one USER@HOST`);
        return await accountCommand(command, rest[0], config(), parsed.values["password-file"], deps, out);
      }
      case "users": {
        if (rest.length > 1) throw new UsageError("users takes at most one HOST");
        return await withAccounts(config(), async (accounts, c) => {
          const host = rest[0] ?? c.hosts[0];
          for (const u of await accounts.list(host)) out.write(`${u}@${host}\n`);
          return 0;
        });
      }
      case "sessions": {
        if (rest.length !== 0) throw new UsageError("sessions takes no arguments");
        return await sessionsCommand(config(), out);
      }
      case "kick": {
        if (rest.length !== 1) throw new UsageError("kick takes exactly one JID");
        return await kickCommand(config(), rest[0]!, out);
      }
      case "disable": case "enable": {
        if (rest.length !== 1) throw new UsageError(`${command} takes exactly one USER@HOST`);
        return await disableCommand(config(), rest[0]!, command === "disable", out, err);
      }
      case "announce": {
        if (rest.length < 2) throw new UsageError("usage: announce HOST TEXT");
        return await announceCommand(config(), rest[0]!, rest.slice(1).join(" "), out);
      }
      case "cert": {
        if (rest[0] !== "import" || rest.length !== 2) throw new UsageError("usage: cert import DIR");
        const { imported, missing } = importCertificates(rest[1], config());
        for (const i of imported) out.write(`${i.domain}: imported from ${i.from} (valid until ${i.validTo})\n`);
        for (const d of missing) err.write(`hearth: no valid certificate in ${rest[1]} covers ${d}\n`);
        if (imported.length > 0) out.write("send SIGHUP to a running server (systemctl reload hearth) to use them\n");
        return imported.length > 0 ? 0 : 1;
      }
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) { err.write(`hearth: ${e.message}\n\n${USAGE}\n`); return 2; }
    if (e instanceof ConfigError || e instanceof AccountError || e instanceof AdminCommandError || e instanceof SchemaTooNewError || e instanceof SchemaOutdatedError) { err.write(`hearth: ${e.message}\n`); return 1; }
    err.write(`hearth: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

/** The config, with the options of every module the server would load checked against their declarations. */
function readConfig(file: string | undefined, extensions: ModuleDefinition<any>[]): Config {
  if (file !== undefined && !existsSync(file)) throw new ConfigError("", `config file ${file} does not exist`);
  const chosen = file ?? (process.env.HEARTH_CONFIG || (existsSync("hearth.yaml") ? "hearth.yaml" : null));
  return loadConfig({ file: chosen, modules: serverModules(extensions) });
}

async function start(config: Config, deps: CliDeps, err: NodeJS.WritableStream): Promise<number> {
  let stopRequested: () => void = () => {};
  const stopped = new Promise<void>((resolve) => { stopRequested = resolve; });
  const onSignal = () => { process.off("SIGINT", onSignal); process.off("SIGTERM", onSignal); stopRequested(); };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  tuneV8();
  batchHelperThreads();
  const server = await startServer(config, deps.extensions);
  // SIGHUP (systemctl reload, certbot's deploy hook): new certificates for new connections, none dropped.
  const onHangup = () => {
    server.reloadTls().then(
      () => err.write("hearth: TLS certificates reloaded\n"),
      (e: Error) => err.write(`hearth: TLS reload failed, keeping the current certificates: ${e.message}\n`),
    );
  };
  process.on("SIGHUP", onHangup);
  const p = server.ports;
  err.write(`hearth: serving ${config.hosts.join(", ")} — c2s ${p.c2s ?? "off"}, direct TLS ${p.directTls ?? "off"}, HTTP/WebSocket ${p.http ?? "off"}; data in ${config.dataDir}\n`);
  err.write(gettingStarted(config, p));
  await stopped;
  process.off("SIGHUP", onHangup);
  await server.stop();
  return 0;
}

/** What a newcomer needs after `npm start`: where to point a client, how to add a user, where to look. */
export function gettingStarted(config: Config, p: { c2s: number | null; http: number | null }): string {
  const host = config.hosts[0];
  const lines = ["", "Next steps:"];
  lines.push(`  add a user:     npx hearth adduser alice@${host}   (prompts for the password)`);
  // A client finds the server by the domain's DNS (SRV or A records); localhost needs no DNS.
  if (p.c2s !== null) lines.push(`  XMPP client:    log in as alice@${host}; server ${host === "localhost" ? "127.0.0.1" : host}, port ${p.c2s}`);
  if (p.http !== null) {
    lines.push(`  web client:     ws://${host}:${p.http}${config.http.websocketPath}`);
    lines.push(`  health:         http://127.0.0.1:${p.http}/health/ready${config.ops.metrics ? `   metrics: http://127.0.0.1:${p.http}/metrics` : ""}`);
  }
  if (config.tls.cert === null && Object.keys(config.tls.certs).length === 0) lines.push("  TLS:            a self-signed certificate (clients will ask you to accept it); set tls.cert/tls.key for real use");
  return lines.join("\n") + "\n\n";
}

async function withAccounts<T>(config: Config, fn: (a: AccountService, c: Config) => Promise<T>): Promise<T> {
  const store = await openStore(config);
  try {
    const accounts = new AccountService(store, new HookBuses(() => {}), new SessionRegistry(), {
      hosts: config.hosts, iterations: config.auth.scramIterations, minPasswordLength: config.registration.minPasswordLength,
    }, createLoginService(store, config.auth));
    return await fn(accounts, config);
  } finally {
    await store.close();
  }
}

async function accountCommand(command: string, address: string, config: Config, passwordFile: string | undefined, deps: CliDeps, out: NodeJS.WritableStream): Promise<number> {
  const j = tryParseJid(address);
  if (!j || !j.local || j.resource) throw new UsageError(`"${address}" is not a USER@HOST address`);
  if (!config.hosts.includes(j.domain)) throw new AccountError("unknown-host", `${j.domain} is not one of the configured hosts (${config.hosts.join(", ")})`);
  return withAccounts(config, async (accounts) => {
    if (command === "deluser") {
      await accounts.delete(j.domain, j.local);
      out.write(`removed ${j.bareString()}\n`);
      return 0;
    }
    const password = await readPassword(passwordFile, deps);
    if (command === "adduser") {
      const user = await accounts.create(j.domain, j.local, password);
      out.write(`created ${user}@${j.domain}\n`);
    } else {
      await accounts.setPassword(j.domain, j.local, password);
      out.write(`password changed for ${j.bareString()}\n`);
    }
    return 0;
  });
}

async function readPassword(file: string | undefined, deps: CliDeps): Promise<string> {
  if (file) {
    const { readFileSync } = await import("node:fs");
    return readFileSync(file, "utf8").replace(/\r?\n$/, "");
  }
  const input = deps.stdin ?? process.stdin;
  const rl = createInterface({ input, output: input.isTTY ? (deps.stderr ?? process.stderr) : undefined, terminal: !!input.isTTY });
  try {
    if (input.isTTY) (deps.stderr ?? process.stderr).write("Password: ");
    const line = await new Promise<string>((resolve, reject) => {
      rl.once("line", resolve);
      rl.once("close", () => reject(new UsageError("no password given on stdin")));
    });
    return line;
  } finally {
    rl.close();
  }
}
