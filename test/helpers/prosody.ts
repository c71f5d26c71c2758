// A private Prosody for federation interop tests: its own config, data, certificate and loopback ports
// (never /etc/prosody). Prosody finds servers through DNS only, so a small test plugin (written here,
// loaded from the private plugin directory) answers its s2s connection lookups from a static map.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";


const ROUTES_PLUGIN = `-- Test only: s2s connections to the domains in test_routes go to fixed addresses instead of DNS.
module:set_global();
local service = require "net.resolvers.service";
local manual = require "net.resolvers.manual";
local routes = module:get_option("test_routes", {});
local original = service.new;
service.new = function (hostname, service_name, proto, extra)
	local route = routes[hostname];
	if route == nil then return original(hostname, service_name, proto, extra); end
	if service_name ~= "xmpp-server" then return manual.new({}, proto, extra); end
	return manual.new({ { "tcp4", route[1], route[2], extra } }, proto, extra);
end
function module.unload() service.new = original; end
`;

export interface ProsodyOptions {
  domain: string;
  /** Loopback address of its s2s listener; its c2s listener is on 127.0.0.1. */
  address: string;
  c2sPort: number;
  s2sPort: number;
  /** domain → [address, port] for its outgoing s2s connections. */
  routes: Record<string, [string, number]>;
  users: Record<string, string>;
  /** PEM files for its domain; a self-signed certificate when absent. */
  cert?: { cert: string; key: string };
  /** A CA to trust for peer certificates; with it, Prosody accepts only peers whose certificate validates. */
  caFile?: string;
  /** Modules to load beyond the federation basics (e.g. "pep"). */
  modules?: string[];
}

export interface Prosody {
  dir: string;
  log(): string;
  stop(): Promise<void>;
}

const lua = (s: string) => JSON.stringify(s);

function waitForPort(host: string, port: number, child: ChildProcess, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`prosody exited with ${child.exitCode}`));
      const s = net.connect(port, host, () => { s.destroy(); resolve(); });
      s.once("error", () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`prosody did not open ${host}:${port} within ${ms} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

export async function startProsody(o: ProsodyOptions): Promise<Prosody> {
  const dir = mkdtempSync(path.join(tmpdir(), "hearth-prosody-"));
  for (const sub of ["data", "plugins", "certs"]) mkdirSync(path.join(dir, sub));
  writeFileSync(path.join(dir, "plugins", "mod_test_routes.lua"), ROUTES_PLUGIN);
  const certFile = path.join(dir, "certs", `${o.domain}.crt`);
  const keyFile = path.join(dir, "certs", `${o.domain}.key`);
  if (o.cert) {
    writeFileSync(certFile, readFileSync(o.cert.cert));
    writeFileSync(keyFile, readFileSync(o.cert.key));
  } else {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile,
      "-out", certFile, "-days", "30", "-subj", `/CN=${o.domain}`, "-addext", `subjectAltName=DNS:${o.domain}`], { stdio: "ignore" });
  }
  const routes = Object.entries(o.routes).map(([d, [addr, port]]) => `[${lua(d)}] = { ${lua(addr)}, ${port} }`).join("; ");
  const cfg = path.join(dir, "prosody.cfg.lua");
  writeFileSync(cfg, `-- Written by test/helpers/prosody.ts for one test run.
local base = ${lua(dir)}
data_path = base .. "/data"
pidfile = base .. "/prosody.pid"
run_as_root = true
log = { { levels = { min = "info" }, to = "file", filename = base .. "/prosody.log" } }
plugin_paths = { base .. "/plugins" }
certificates = base .. "/certs"
interfaces = { ${lua(o.address)} }
local_interfaces = { ${lua(o.address)} }
c2s_ports = { ${o.c2sPort} }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { ${o.s2sPort} }
s2s_interfaces = { ${lua(o.address)} }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_direct_tls_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
c2s_require_encryption = false
s2s_require_encryption = true
${o.caFile ? `-- Certificates only (SASL EXTERNAL), checked against the test CA.
s2s_secure_auth = true
ssl = { cafile = ${lua(o.caFile)} }` : `-- Dialback for peers whose certificate it cannot verify.
s2s_secure_auth = false`}
authentication = "internal_hashed"
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix"; "test_routes"${(o.modules ?? []).map((m) => `; ${lua(m)}`).join("")} }
modules_disabled = { "offline" }
test_routes = { ${routes} }
VirtualHost ${lua(o.domain)}
`);
  for (const [user, password] of Object.entries(o.users)) {
    execFileSync("prosodyctl", ["--config", cfg, "register", user, o.domain, password], { stdio: "ignore" });
  }
  const child = spawn("prosody", ["-F", "--config", cfg], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const readLog = () => { try { return readFileSync(path.join(dir, "prosody.log"), "utf8"); } catch { return ""; } };
  try {
    await waitForPort("127.0.0.1", o.c2sPort, child, 15_000);
    await waitForPort(o.address, o.s2sPort, child, 5000);
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`${(err as Error).message}\n${readLog().slice(-2000)}`);
  }
  return {
    dir,
    log: readLog,
    async stop() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
