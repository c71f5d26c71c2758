// A private ejabberd for federation interop tests: its own config, spool, logs, Erlang node name and
// distribution port, on loopback (never /etc/ejabberd). ejabberd finds servers only through DNS, so its
// resolver asks the test's DNS server (test/helpers/dns-server.ts), which holds the peer's SRV record.
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface EjabberdOptions {
  domain: string;
  /** Loopback address of its s2s listener; its c2s listener is on 127.0.0.1. */
  address: string;
  c2sPort: number;
  s2sPort: number;
  distPort: number;
  /** The test DNS server (on 127.0.0.1) that knows the SRV and A records of its peers. */
  dnsPort: number;
  users: Record<string, string>;
  /** PEM files for its domain (a self-signed certificate when absent), and a CA to trust for peers. */
  cert?: { cert: string; key: string };
  caFile?: string;
}

export interface Ejabberd {
  dir: string;
  log(): string;
  stop(): Promise<void>;
}

const CTL = "/usr/sbin/ejabberdctl";

export async function startEjabberd(o: EjabberdOptions): Promise<Ejabberd> {
  const dir = mkdtempSync(path.join(tmpdir(), "hearth-ejabberd-"));
  chmodSync(dir, 0o755);
  const etc = path.join(dir, "etc");
  for (const sub of ["etc", "spool", "logs", "run"]) mkdirSync(path.join(dir, sub));
  const pem = path.join(etc, "server.pem");
  if (o.cert) {
    writeFileSync(pem, readFileSync(o.cert.cert, "utf8") + readFileSync(o.cert.key, "utf8"));
  } else {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${pem}.key`,
      "-out", `${pem}.crt`, "-days", "30", "-subj", `/CN=${o.domain}`, "-addext", `subjectAltName=DNS:${o.domain}`], { stdio: "ignore" });
    writeFileSync(pem, readFileSync(`${pem}.crt`, "utf8") + readFileSync(`${pem}.key`, "utf8"));
  }
  const caFile = path.join(etc, "ca.pem");
  if (o.caFile) writeFileSync(caFile, readFileSync(o.caFile));
  const ip = (a: string) => `{${a.split(".").join(",")}}`;
  writeFileSync(path.join(etc, "inetrc"), [
    // Only the test's DNS server: not the machine's resolv.conf or hosts file.
    '{lookup,["file","dns"]}.',
    '{resolv_conf, ""}.',
    '{hosts_file, ""}.',
    `{host,${ip("127.0.0.1")}, ["localhost"]}.`,
    `{nameserver,${ip("127.0.0.1")}, ${o.dnsPort}}.`,
    "",
  ].join("\n"));
  const cookie = execFileSync("od", ["-An", "-N16", "-tx1", "/dev/urandom"]).toString().replace(/\s/g, "");
  writeFileSync(path.join(etc, "ejabberdctl.cfg"), [
    `ERLANG_NODE='hearthtest${o.distPort}@localhost'`,
    `ERL_DIST_PORT=${o.distPort}`,
    "INET_DIST_INTERFACE=127.0.0.1",
    `ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0 -setcookie ${cookie}"`,
    `EJABBERD_PID_PATH='${path.join(dir, "run", "ejabberd.pid")}'`,
    "EJABBERD_BYPASS_WARNINGS=true",
    "",
  ].join("\n"), { mode: 0o600 });
  writeFileSync(path.join(etc, "ejabberd.yml"), `# Written by test/helpers/ejabberd.ts for one test run.
loglevel: info
log_rotate_count: 0
hosts:
  - ${o.domain}
certfiles:
  - ${JSON.stringify(pem)}
listen:
  - { port: ${o.c2sPort}, ip: "127.0.0.1", module: ejabberd_c2s, starttls: false }
  - { port: ${o.s2sPort}, ip: ${JSON.stringify(o.address)}, module: ejabberd_s2s_in }
s2s_use_starttls: required
${o.caFile ? `s2s_cafile: ${JSON.stringify(caFile)}\n` : ""}outgoing_s2s_families: [ipv4]
s2s_dns_timeout: 2
s2s_dns_retries: 1
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
s2s_access: s2s
shaper_rules:
  c2s_shaper: none
  s2s_shaper: none
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_version: {}
  mod_s2s_dialback: {}
`);
  execFileSync("chown", ["-R", "ejabberd:ejabberd", dir]);
  const ctl = (...args: string[]) => run("setpriv", ["--reuid=ejabberd", "--regid=ejabberd", "--init-groups", "env", `HOME=${path.join(dir, "spool")}`, CTL,
    "--config-dir", etc, "--ctl-config", path.join(etc, "ejabberdctl.cfg"), "--spool", path.join(dir, "spool"), "--logs", path.join(dir, "logs"), ...args], { timeout: 60_000 });
  const readLog = () => {
    try {
      return readdirSync(path.join(dir, "logs")).map((f) => readFileSync(path.join(dir, "logs", f), "utf8")).join("\n");
    } catch { return ""; }
  };
  try {
    await ctl("start");
    await ctl("started");
    for (const [user, password] of Object.entries(o.users)) await ctl("register", user, o.domain, password);
  } catch (err) {
    await ctl("stop").catch(() => undefined);
    throw new Error(`ejabberd did not start: ${(err as Error).message}\n${readLog().slice(-3000)}`);
  }
  return {
    dir,
    log: readLog,
    async stop() {
      await ctl("stop").catch(() => undefined);
      await ctl("stopped").catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
