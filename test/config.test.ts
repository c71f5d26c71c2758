import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import {
  ConfigError,
  defaultConfig,
  describeConfig,
  loadConfig,
  renderDefaultYaml,
  type Config,
} from "../src/config/config.js";
import { buildSniOptions, loadTls, type TlsMaterial } from "../src/config/tls.js";
import { createLogger, formatLine, nullLogger, type Logger } from "../src/log.js";
import { exampleYaml, shippedModules } from "./tools/readme-sections.js";
import { moduleOptions } from "../src/config/schema.js";
import { defineModule } from "../src/modules/module.js";
import { main } from "../src/cli/main.js";
import { extensions } from "../extensions/index.js";
import { startTestServer } from "./helpers/server.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), "hearth-config-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function yamlFile(text: string, name = "hearth.yaml"): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

function load(opts: Parameters<typeof loadConfig>[0] = {}): Config {
  return loadConfig({ env: {}, cwd: dir, ...opts });
}

function throwsConfig(fn: () => unknown, key: string, message: RegExp | string): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError, got ${String(caught)}`);
  assert.equal(caught.key, key);
  if (typeof message === "string") assert.equal(caught.message, message);
  else assert.match(caught.message, message);
  return caught;
}

function sink(into: string[]): NodeJS.WritableStream {
  return { write: (chunk: string) => into.push(chunk) } as unknown as NodeJS.WritableStream;
}

function capturingLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger(
    { level: "debug", stanzas: false, format: "json" },
    { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) },
  );
  return { log, lines };
}

describe("config: defaults", () => {
  it("has a default for everything", () => {
    const config = defaultConfig(dir);
    assert.deepEqual(config.hosts, ["localhost"]);
    assert.equal(config.dataDir, path.join(dir, "data"));
    assert.deepEqual(config.log, { level: "info", stanzas: false, format: "auto" });
    assert.deepEqual(config.c2s, {
      bind: "0.0.0.0",
      port: 5222,
      directTlsPort: 5223,
      requireTls: true,
      resourceConflict: "kick-old",
      maxOutboundBytes: 4 * 1024 * 1024,
      smResumeSeconds: 300,
      smDurable: true,
    });
    assert.deepEqual(config.http, {
      bind: "0.0.0.0", port: 5280, websocketPath: "/xmpp-websocket", corsOrigins: [],
      bosh: { enabled: true, path: "/http-bind", maxWait: 60, maxHold: 2, inactivitySeconds: 60 },
    });
    assert.deepEqual(config.tls, { cert: null, key: null, certs: {} });
    assert.deepEqual(config.storage, { driver: "sqlite", sqlite: { path: path.join(dir, "data", "hearth.db") }, postgres: { url: null, poolSize: 10 }, retention: { days: 0, unarchivedDays: 7, intervalSeconds: 3600 } });
    assert.deepEqual(config.auth, {
      scramIterations: 4096,
      mechanisms: ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"],
      allowPlainInsecure: false,
      sasl2: true,
      channelBinding: true,
      fastTokenTtlSeconds: 2_592_000,
      maxFailures: 20,
      maxFailuresPerAccount: 5,
      failureWindowSeconds: 300,
      failureDelayMs: 1000,
      maxFailureDelayMs: 16000,
      exemptNetworks: ["127.0.0.0/8", "::1/128"],
    });
    assert.deepEqual(config.registration, { policy: "localhost", minPasswordLength: 6 });
    assert.deepEqual(config.limits, {
      maxStanzaBytes: 262144,
      maxConnectionsPerIp: 64,
      maxConnections: 0,
      stanzasPerSecond: 50,
      stanzaBurst: 200,
      authTimeoutSeconds: 30,
      idleTimeoutSeconds: 300,
    });
    assert.deepEqual(config.offline, { maxPerUser: 1000 });
    assert.deepEqual(config.modules, { disabled: [] });
  });

  it("loadConfig without file, env or overrides gives the defaults", () => {
    assert.deepEqual(load({ file: null }), defaultConfig(dir));
  });

  it("returns independent objects", () => {
    const a = defaultConfig(dir);
    a.hosts.push("x.example");
    assert.deepEqual(defaultConfig(dir).hosts, ["localhost"]);
  });

  it("describes every key for the README", () => {
    const rows = describeConfig();
    const port = rows.find((r) => r.key === "c2s.port");
    assert.deepEqual(port && { default: port.default, env: port.env }, { default: "5222", env: "HEARTH_C2S__PORT" });
    assert.equal(rows.find((r) => r.key === "storage.sqlite.path")?.default, "<dataDir>/hearth.db");
    assert.equal(rows.find((r) => r.key === "hosts")?.default, '["localhost"]');
    assert.ok(rows.some((r) => r.key === "modules.<name>"));
    for (const row of rows) assert.notEqual(row.description, "", row.key);
  });
});

describe("config: YAML file", () => {
  it("merges the file over the defaults", () => {
    const file = yamlFile(
      [
        "hosts: [Example.COM, chat.example.org.]",
        "c2s:",
        "  port: 5322",
        "  directTlsPort: null",
        "limits:",
        "  maxStanzaBytes: 10000",
        "modules:",
        "  disabled: [ping]",
        "  mam:",
        "    maxResults: 50",
        "storage:",
        "  sqlite:",
        "    path: db/x.db",
      ].join("\n"),
    );
    const config = load({ file });
    assert.deepEqual(config.hosts, ["example.com", "chat.example.org"]);
    assert.equal(config.c2s.port, 5322);
    assert.equal(config.c2s.directTlsPort, null);
    assert.equal(config.c2s.requireTls, true);
    assert.equal(config.limits.maxStanzaBytes, 10000);
    assert.equal(config.limits.stanzaBurst, 200);
    assert.deepEqual(config.modules, { disabled: ["ping"], mam: { maxResults: 50 } });
    assert.equal(config.storage.sqlite.path, path.join(dir, "db", "x.db"));
  });

  it("resolves the file and relative paths against cwd; keeps :memory:", () => {
    yamlFile("dataDir: var/hearth\nstorage: { sqlite: { path: ':memory:' } }\n");
    const config = load({ file: "hearth.yaml" });
    assert.equal(config.dataDir, path.join(dir, "var", "hearth"));
    assert.equal(config.storage.sqlite.path, ":memory:");
  });

  it("accepts an empty file and empty sections", () => {
    assert.deepEqual(load({ file: yamlFile("") }), defaultConfig(dir));
    assert.deepEqual(load({ file: yamlFile("c2s:\n# port: 1\nlog:\n") }), defaultConfig(dir));
  });

  it("accepts off and false for a disabled port", () => {
    const config = load({ file: yamlFile("c2s: { port: off, directTlsPort: false }\nhttp: { port: ~ }\n") });
    assert.deepEqual([config.c2s.port, config.c2s.directTlsPort, config.http.port], [null, null, null]);
  });

  it("rejects an unknown key, naming its path and line", () => {
    const file = yamlFile("c2s:\n  port: 5222\n  prot: 5223\n");
    const err = throwsConfig(() => load({ file }), "c2s.prot", `c2s.prot: unknown key (did you mean "c2s.port"?) (at ${file} line 3)`);
    assert.deepEqual(err.location, { file, line: 3 });
    throwsConfig(() => load({ file: yamlFile("limits:\n  max_stanza_bytes: 5\n") }), "limits.max_stanza_bytes", /did you mean "limits.maxStanzaBytes"/);
    throwsConfig(() => load({ file: yamlFile("frobnicate: 1\n") }), "frobnicate", /^frobnicate: unknown key \(known keys: hosts, dataDir/);
    throwsConfig(() => load({ file: yamlFile("c2s.port: 1\n") }), '["c2s.port"]', /nested mapping/);
  });

  it("rejects a wrong type", () => {
    const file = yamlFile("hosts: [localhost]\nc2s:\n  port: abc\n");
    throwsConfig(() => load({ file }), "c2s.port", `c2s.port: must be an integer 0-65535 or null, got "abc" (at ${file} line 3)`);
    throwsConfig(() => load({ file: yamlFile("c2s:\n  requireTls: yes\n") }), "c2s.requireTls", /must be true or false, got "yes"/);
    throwsConfig(() => load({ file: yamlFile("hosts: localhost\n") }), "hosts", /^hosts: must be a list of entries, each a domain name .*, got "localhost"/);
    throwsConfig(() => load({ file: yamlFile("c2s: 5222\n") }), "c2s", /^c2s: must be a mapping of keys, got 5222/);
    throwsConfig(() => load({ file: yamlFile("- a\n- b\n") }), "", /^configuration: must be a mapping of keys, got a list/);
    throwsConfig(() => load({ file: yamlFile("limits: { maxStanzaBytes: 1.5 }\n") }), "limits.maxStanzaBytes", /got 1.5/);
  });

  it("rejects values out of range", () => {
    throwsConfig(() => load({ file: yamlFile("c2s: { port: 70000 }\n") }), "c2s.port", /must be an integer 0-65535 or null, got 70000/);
    throwsConfig(() => load({ file: yamlFile("auth:\n  scramIterations: 1000\n") }), "auth.scramIterations", /must be an integer 4096-10000000, got 1000 \(at .* line 2\)/);
    throwsConfig(() => load({ file: yamlFile("limits: { stanzasPerSecond: -1 }\n") }), "limits.stanzasPerSecond", /got -1/);
  });

  it("rejects a bad enum value", () => {
    throwsConfig(() => load({ file: yamlFile("log:\n  level: loud\n") }), "log.level", /^log.level: must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "loud"/);
    throwsConfig(() => load({ file: yamlFile("registration: { policy: anyone }\n") }), "registration.policy", /"open", "closed", "localhost"/);
  });

  it("validates hosts, list items and other formats", () => {
    const file = yamlFile("hosts:\n  - example.com\n  - bad host\n");
    throwsConfig(() => load({ file }), "hosts[1]", new RegExp(`^hosts\\[1\\]: must be a domain name.*got "bad host" \\(at ${file} line 3\\)`));
    throwsConfig(() => load({ file: yamlFile("hosts: [a.example, A.example]\n") }), "hosts[1]", /duplicate entry "a.example"/);
    throwsConfig(() => load({ file: yamlFile("hosts: []\n") }), "hosts", /at least 1 entry/);
    throwsConfig(() => load({ file: yamlFile("hosts: [10.0.0.1]\n") }), "hosts[0]", /domain name/);
    throwsConfig(() => load({ file: yamlFile("auth: { mechanisms: [PLAIN, DIGEST-MD5] }\n") }), "auth.mechanisms[1]", /one of SCRAM-SHA-256, SCRAM-SHA-1, PLAIN/);
    assert.deepEqual(load({ file: yamlFile("auth: { mechanisms: [plain] }\n") }).auth.mechanisms, ["PLAIN"]);
    throwsConfig(() => load({ file: yamlFile("http: { websocketPath: ws }\n") }), "http.websocketPath", /starting with "\/"/);
    throwsConfig(() => load({ file: yamlFile("c2s: { bind: 'not an address' }\n") }), "c2s.bind", /IP address or host name/);
    assert.equal(load({ file: yamlFile("c2s: { bind: '::1' }\n") }).c2s.bind, "::1");
  });

  it("validates tls settings", () => {
    const certs = load({ file: yamlFile("tls:\n  certs:\n    Example.COM: { cert: a.crt, key: a.key }\n") }).tls.certs;
    assert.deepEqual(certs, { "example.com": { cert: path.join(dir, "a.crt"), key: path.join(dir, "a.key") } });
    throwsConfig(() => load({ file: yamlFile("tls:\n  certs:\n    example.com: { cert: a.crt }\n") }), 'tls.certs["example.com"].key', /must be a file path, got null/);
    throwsConfig(() => load({ file: yamlFile("tls:\n  certs:\n    example.com: { cert: a, key: b, chain: c }\n") }), 'tls.certs["example.com"].chain', /unknown key/);
    throwsConfig(() => load({ file: yamlFile("tls:\n  cert: a.crt\n") }), "tls.key", "tls.key: must be set together with tls.cert");
  });

  it("checks that listeners do not share a port", () => {
    throwsConfig(() => load({ file: yamlFile("c2s: { directTlsPort: 5222 }\n") }), "c2s.directTlsPort", "c2s.directTlsPort: port 5222 is already used by c2s.port");
    throwsConfig(() => load({ file: yamlFile("http: { port: 5222 }\n") }), "http.port", /already used by c2s.port/);
    const apart = load({ file: yamlFile("c2s: { bind: 127.0.0.1 }\nhttp: { bind: 127.0.0.2, port: 5222 }\n") });
    assert.equal(apart.http.port, 5222);
    assert.equal(load({ overrides: { c2s: { port: 0, directTlsPort: 0 }, http: { port: 0 } } }).c2s.port, 0);
  });

  it("takes module options as free-form mappings", () => {
    const config = load({ file: yamlFile("modules:\n  muc:\n    rooms: { max: 10 }\n  ping:\n") });
    assert.deepEqual(config.modules.muc, { rooms: { max: 10 } });
    assert.deepEqual(config.modules.ping, {});
    throwsConfig(() => load({ file: yamlFile("modules:\n  ping: yes\n") }), "modules.ping", /must be a mapping of options for module "ping", got "yes"/);
  });

  it("reports bad YAML with its line", () => {
    const file = yamlFile("hosts: [localhost]\nc2s:\n  port: 5222\n  port: 5223\n");
    const err = throwsConfig(() => load({ file }), "", /invalid YAML: Map keys must be unique at line 4/);
    assert.equal(err.location?.line, 4);
    const tabs = yamlFile("c2s:\n\tport: 1\n");
    assert.equal(throwsConfig(() => load({ file: tabs }), "", /invalid YAML.*line 2/).location?.line, 2);
  });

  it("reports a missing file", () => {
    const file = path.join(dir, "nope.yaml");
    throwsConfig(() => load({ file }), "", `cannot read config file ${file}: file not found`);
  });
});

describe("config: environment", () => {
  it("overrides nested keys, arrays, booleans and nulls", () => {
    const config = load({
      env: {
        HEARTH_C2S__PORT: "5322",
        HEARTH_C2S__DIRECT_TLS_PORT: "off",
        HEARTH_C2S__REQUIRE_TLS: "no",
        HEARTH_LIMITS__MAX_STANZA_BYTES: "1000",
        HEARTH_HOSTS: "a.example, B.example",
        HEARTH_DATA_DIR: "/x",
        HEARTH_LOG__LEVEL: "debug",
        HEARTH_AUTH__MECHANISMS: "PLAIN",
        HEARTH_STORAGE__SQLITE__PATH: "",
        HEARTH_MODULES__DISABLED: "",
        PATH: "/usr/bin",
      },
    });
    assert.equal(config.c2s.port, 5322);
    assert.equal(config.c2s.directTlsPort, null);
    assert.equal(config.c2s.requireTls, false);
    assert.equal(config.limits.maxStanzaBytes, 1000);
    assert.deepEqual(config.hosts, ["a.example", "b.example"]);
    assert.equal(config.dataDir, path.resolve("/x"));
    assert.equal(config.storage.sqlite.path, path.join(path.resolve("/x"), "hearth.db"));
    assert.equal(config.log.level, "debug");
    assert.deepEqual(config.auth.mechanisms, ["PLAIN"]);
    assert.deepEqual(config.modules.disabled, []);
  });

  it("sets module options and per-domain certificates", () => {
    const config = load({
      env: {
        HEARTH_MODULES__MAM__MAX_RESULTS: "50",
        HEARTH_MODULES__MUC__ROOM_NAME: "lobby",
        HEARTH_MODULES__PING: "{interval: 5}",
        HEARTH_TLS__CERTS: '{"example.com": {"cert": "/c.pem", "key": "/k.pem"}}',
      },
    });
    assert.deepEqual(config.modules.mam, { maxResults: 50 });
    assert.deepEqual(config.modules.muc, { roomName: "lobby" });
    assert.deepEqual(config.modules.ping, { interval: 5 });
    assert.deepEqual(config.tls.certs, { "example.com": { cert: path.resolve("/c.pem"), key: path.resolve("/k.pem") } });
  });

  it("rejects bad values, naming the variable", () => {
    throwsConfig(() => load({ env: { HEARTH_C2S__PORT: "abc" } }), "HEARTH_C2S__PORT", 'HEARTH_C2S__PORT (c2s.port): must be an integer 0-65535 or "off", got "abc"');
    throwsConfig(() => load({ env: { HEARTH_C2S__PORT: "99999" } }), "HEARTH_C2S__PORT", /got 99999/);
    throwsConfig(() => load({ env: { HEARTH_LIMITS__MAX_STANZA_BYTES: "off" } }), "HEARTH_LIMITS__MAX_STANZA_BYTES", /must be an integer 256-67108864, got "off"/);
    throwsConfig(() => load({ env: { HEARTH_LOG__STANZAS: "maybe" } }), "HEARTH_LOG__STANZAS", /true or false/);
    throwsConfig(() => load({ env: { HEARTH_LOG__LEVEL: "loud" } }), "HEARTH_LOG__LEVEL", /one of "trace"/);
    throwsConfig(() => load({ env: { HEARTH_HOSTS: "ok.example,bad host" } }), "HEARTH_HOSTS", /^HEARTH_HOSTS \(hosts\[1\]\): must be a domain name/);
    throwsConfig(() => load({ env: { HEARTH_TLS__CERTS: "{" } }), "HEARTH_TLS__CERTS", /YAML or JSON mapping/);
    throwsConfig(() => load({ env: { HEARTH_MODULES__PING: "5" } }), "HEARTH_MODULES__PING", /mapping of module options/);
  });

  it("rejects unknown HEARTH_ variables but not HEARTH_CONFIG", () => {
    throwsConfig(() => load({ env: { HEARTH_C2S__PROT: "1" } }), "HEARTH_C2S__PROT", "HEARTH_C2S__PROT: unknown variable (did you mean HEARTH_C2S__PORT?)");
    throwsConfig(() => load({ env: { HEARTH_FROBNICATE: "1" } }), "HEARTH_FROBNICATE", /unknown variable/);
    throwsConfig(() => load({ env: { HEARTH_C2S: "1" } }), "HEARTH_C2S", /c2s is a section; set its keys instead, e.g. HEARTH_C2S__BIND/);
    throwsConfig(() => load({ env: { HEARTH_CONFIG: path.join(dir, "missing.yaml") } }), "", /cannot read config file/);
    assert.deepEqual(load({ file: null, env: { HEARTH_CONFIG: path.join(dir, "missing.yaml") } }), defaultConfig(dir));
  });

  it("HEARTH_CONFIG names the file; env overrides the file, overrides win over both", () => {
    yamlFile("c2s: { port: 1000, directTlsPort: 1001 }\nhttp: { port: 1002 }\nlimits: { stanzaBurst: 7 }\n");
    const config = load({
      env: { HEARTH_CONFIG: "hearth.yaml", HEARTH_C2S__PORT: "2000", HEARTH_HTTP__PORT: "2002" },
      overrides: { http: { port: 3002 } },
    });
    assert.deepEqual([config.c2s.port, config.c2s.directTlsPort, config.http.port, config.limits.stanzaBurst], [2000, 1001, 3002, 7]);
  });
});

describe("config: overrides", () => {
  it("are validated like the file", () => {
    throwsConfig(() => load({ overrides: { c2s: { port: -5 } } }), "c2s.port", "c2s.port: must be an integer 0-65535 or null, got -5 (in overrides)");
    throwsConfig(() => load({ overrides: { c2s: { prot: 1 } } as never }), "c2s.prot", /unknown key/);
  });

  it("merge module options deeply and replace lists", () => {
    const file = yamlFile("hosts: [a.example, b.example]\nmodules: { mam: { a: 1, b: 2 } }\n");
    const config = load({ file, overrides: { hosts: ["c.example"], modules: { disabled: [], mam: { b: 3 } } } });
    assert.deepEqual(config.hosts, ["c.example"]);
    assert.deepEqual(config.modules.mam, { a: 1, b: 3 });
  });
});

describe("config: module options", () => {
  const withModules = (opts: Parameters<typeof loadConfig>[0] = {}) => load({ modules: shippedModules, ...opts });

  it("an unknown option key fails start, naming modules.<name>.<key> and its line", async () => {
    const file = yamlFile("modules:\n  muc:\n    domian: rooms.{host}\n");
    const stderr: string[] = [];
    const code = await main(["start", "--config", file], { extensions, stdout: sink([]), stderr: sink(stderr) });
    assert.equal(code, 1);
    assert.equal(stderr.join(""), `hearth: modules.muc.domian: unknown key (did you mean "modules.muc.domain"?) (at ${file} line 3)\n`);
    // Started from code with a config loaded without the module list, the module loader refuses it the same way.
    await assert.rejects(startTestServer({ modules: { vcard: { maxBytes: 10, maxbytes: 20 } } }), (err: unknown) =>
      err instanceof ConfigError && err.key === "modules.vcard.maxbytes" && /did you mean "modules.vcard.maxBytes"/.test(err.message));
  });

  it("rejects a module that takes no options being given some, and a module name no module has", () => {
    throwsConfig(() => withModules({ file: yamlFile("modules:\n  ping:\n    interval: 5\n") }), "modules.ping.interval", /^modules.ping.interval: unknown key \(modules.ping takes no options\)/);
    throwsConfig(() => withModules({ file: yamlFile("modules:\n  mucc: {}\n") }), "modules.mucc", /did you mean "modules.muc"\?/);
    assert.deepEqual(withModules({ file: yamlFile("modules:\n  ping:\n") }).modules.ping, {});
  });

  it("a wrong type fails, naming the key, from the file, the environment and the loader", async () => {
    throwsConfig(() => withModules({ file: yamlFile("modules:\n  mam:\n    maxPageSize: many\n") }), "modules.mam.maxPageSize", /^modules.mam.maxPageSize: must be an integer 1-10000, got "many" \(at .* line 3\)$/);
    throwsConfig(() => withModules({ file: yamlFile("modules: { muc: { admins: [romeo@localhost, localhost] } }\n") }), "modules.muc.admins[1]", /must be a bare JID/);
    throwsConfig(() => withModules({ env: { HEARTH_MODULES__MOBILE__HEARTBEAT_SECONDS: "soon" } }), "HEARTH_MODULES__MOBILE__HEARTBEAT_SECONDS", /^HEARTH_MODULES__MOBILE__HEARTBEAT_SECONDS \(modules.mobile.heartbeatSeconds\): must be a number 0.05-86400, got "soon"$/);
    throwsConfig(() => withModules({ env: { HEARTH_MODULES__MUC__DOMIAN: "x" } }), "HEARTH_MODULES__MUC__DOMIAN", /did you mean HEARTH_MODULES__MUC__DOMAIN\?/);
    await assert.rejects(startTestServer({ modules: { private: { maxBytesPerUser: "1k" } } }), (err: unknown) =>
      err instanceof ConfigError && err.message === 'modules.private.maxBytesPerUser: must be an integer of at least 1, got "1k"');
  });

  it("fills defaults, takes typed environment overrides, and hands setup the checked value", async () => {
    const config = withModules({
      file: yamlFile("modules:\n  mam:\n    maxPageSize: 100\n  mobile:\n    devicesPerClass: { web: 5 }\n"),
      env: { HEARTH_MODULES__MUC__ADMINS: "romeo@Localhost, juliet@localhost", HEARTH_MODULES__MOBILE__HEARTBEAT_SECONDS: "0.5" },
    });
    assert.deepEqual(config.modules.mam, { defaultPageSize: 50, maxPageSize: 100, prefsCacheSeconds: 60 });
    assert.deepEqual((config.modules.muc as { admins: string[] }).admins, ["romeo@localhost", "juliet@localhost"]);
    const mobile = config.modules.mobile as { heartbeatSeconds: number; devicesPerClass: unknown };
    assert.equal(mobile.heartbeatSeconds, 0.5);
    assert.deepEqual(mobile.devicesPerClass, { phone: 1, tablet: 1, desktop: 1, web: 5 });

    let seen: unknown;
    const probe = defineModule({
      name: "probe",
      options: moduleOptions("A module that records its options.", {
        greeting: { kind: "string", default: "hello", expect: "a word", accept: (v) => v, description: "What it says." },
        limits: { kind: "section", description: "Nested.", fields: { max: { kind: "integer", min: 1, max: 9, default: 3, description: "At most." } } },
      }),
      setup(api) { seen = api.options; },
    });
    // The mobile adapter needs the feature modules it translates to (blocking, conversations, retraction).
    const ts = await startTestServer({ modules: { disabled: ["mobile"], probe: { limits: { max: 7 } } } }, { modules: [probe] });
    await ts.stop();
    assert.deepEqual(seen, { greeting: "hello", limits: { max: 7 } });
  });

  it("a cross-field check fails, naming the key it blames", async () => {
    throwsConfig(() => withModules({ file: yamlFile("modules:\n  muc:\n    maxHistory: 10\n    defaultHistory: 50\n") }), "modules.muc.defaultHistory", "modules.muc.defaultHistory: must not exceed maxHistory");
    throwsConfig(() => withModules({ env: { HEARTH_MODULES__MOBILE__TOKEN_TTL_SECONDS: "100", HEARTH_MODULES__MOBILE__MAX_TOKEN_TTL_SECONDS: "10" } }), "modules.mobile.tokenTtlSeconds", /must not exceed maxTokenTtlSeconds/);
    // Left out, defaultHistory follows a smaller maxHistory, as before options were declared.
    assert.equal((withModules({ file: yamlFile("modules: { muc: { maxHistory: 10 } }\n") }).modules.muc as { defaultHistory: unknown }).defaultHistory, null);
    await assert.rejects(startTestServer({ modules: { mam: { defaultPageSize: 300 } } }), (err: unknown) =>
      err instanceof ConfigError && err.key === "modules.mam.defaultPageSize");
  });
});

describe("config: hearth.example.yaml", () => {
  const exampleUrl = new URL("../../hearth.example.yaml", import.meta.url);

  it("is generated from the schema and the shipped modules' options (npm run docs)", () => {
    assert.equal(readFileSync(exampleUrl, "utf8"), exampleYaml(), "run `npm run docs` to regenerate hearth.example.yaml");
  });

  it("loads to exactly the defaults and documents every key, module options included", () => {
    assert.deepEqual(load({ file: yamlFile(renderDefaultYaml()) }), defaultConfig(dir));
    const text = exampleYaml();
    assert.deepEqual(load({ file: yamlFile(text), modules: shippedModules }), defaultConfig(dir, shippedModules));
    const rows = describeConfig(shippedModules);
    assert.ok(rows.some((r) => r.key === "modules.muc.maxHistory"));
    for (const row of rows) {
      if (row.key.includes("<")) continue;
      assert.ok(text.includes(`Environment: ${row.env}\n`), row.key);
    }
  });
});

describe("config: TLS", () => {
  it("generates a self-signed certificate once and reuses it", async function () {
    this.timeout(30000);
    const { log, lines } = capturingLogger();
    const config = load({ overrides: { hosts: ["example.com", "localhost"] } });
    const first = await loadTls(config, log);
    const keyFile = path.join(dir, "data", "tls", "example.com.key");
    const certFile = path.join(dir, "data", "tls", "example.com.crt");
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const material = first.get("example.com")!;
    assert.equal(material.selfSigned, true);
    assert.equal(readFileSync(certFile, "utf8"), material.cert);
    assert.equal(readFileSync(keyFile, "utf8"), material.key);
    const x509 = new X509Certificate(material.cert);
    assert.equal(x509.subject, "CN=example.com");
    assert.equal(x509.subjectAltName, "DNS:example.com, DNS:*.example.com");
    assert.equal(x509.checkHost("conference.example.com"), "*.example.com");
    assert.ok(Date.parse(x509.validTo) - Date.now() > 9 * 365 * 86_400_000);
    assert.ok(first.get("localhost")!.selfSigned);
    assert.ok(lines.some((l) => l.level === 40 && l.domain === "example.com" && /self-signed/.test(String(l.msg))));

    const second = await loadTls(config, nullLogger);
    assert.equal(second.get("example.com")!.cert, material.cert);
    assert.equal(second.get("example.com")!.key, material.key);
  });

  it("uses configured certificate files as given", async function () {
    this.timeout(30000);
    const generated = await loadTls(load({ overrides: { hosts: ["a.example", "b.example"], dataDir: "gen" } }), nullLogger);
    const write = (name: string, text: string) => {
      writeFileSync(path.join(dir, name), text);
      return name;
    };
    const a = generated.get("a.example")!;
    const b = generated.get("b.example")!;
    const config = load({
      overrides: {
        hosts: ["a.example", "b.example", "c.b.example"],
        tls: {
          cert: write("b.crt", b.cert),
          key: write("b.key", b.key),
          certs: { "a.example": { cert: write("a.crt", a.cert), key: write("a.key", a.key) } },
        },
      },
    });
    const { log, lines } = capturingLogger();
    const material = await loadTls(config, log);
    assert.deepEqual(material.get("a.example"), { cert: a.cert, key: a.key, selfSigned: false });
    assert.deepEqual(material.get("b.example"), { cert: b.cert, key: b.key, selfSigned: false });
    assert.equal(material.get("c.b.example")?.cert, b.cert);
    assert.ok(!lines.some((l) => /self-signed/.test(String(l.msg))));
    assert.ok(!lines.some((l) => l.domain === "c.b.example"), "c.b.example is covered by *.b.example");
  });

  it("reports unreadable or mismatched configured files with the key name", async function () {
    this.timeout(30000);
    const missing = load({ overrides: { tls: { cert: "none.crt", key: "none.key" } } });
    await assert.rejects(loadTls(missing, nullLogger), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, "tls.cert");
      assert.equal(err.message, `tls.cert: cannot read ${path.join(dir, "none.crt")}: file not found`);
      return true;
    });
    const generated = await loadTls(load({ overrides: { hosts: ["a.example", "b.example"], dataDir: "gen" } }), nullLogger);
    writeFileSync(path.join(dir, "a.crt"), generated.get("a.example")!.cert);
    writeFileSync(path.join(dir, "b.key"), generated.get("b.example")!.key);
    writeFileSync(path.join(dir, "junk.crt"), "hello");
    const mismatched = load({ overrides: { tls: { certs: { "a.example": { cert: "a.crt", key: "b.key" } } } } });
    await assert.rejects(loadTls(mismatched, nullLogger), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, 'tls.certs["a.example"].key');
      assert.match(err.message, /does not match the certificate/);
      return true;
    });
    const junk = load({ overrides: { tls: { cert: "junk.crt", key: "b.key" } } });
    await assert.rejects(loadTls(junk, nullLogger), (err: unknown) => err instanceof ConfigError && err.key === "tls.cert" && /not a PEM certificate/.test(err.message));
  });

  it("chooses the certificate by SNI", async function () {
    this.timeout(30000);
    const material = await loadTls(load({ overrides: { hosts: ["a.example", "b.example"] } }), nullLogger);
    const server = tls.createServer(buildSniOptions(material, "a.example"), (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const presented = (servername?: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ port, host: "127.0.0.1", servername, rejectUnauthorized: false }, () => {
          resolve(socket.getPeerX509Certificate()!.subject);
          socket.destroy();
        });
        socket.on("error", reject);
      });
    try {
      assert.equal(await presented("b.example"), "CN=b.example");
      assert.equal(await presented("conference.b.example"), "CN=b.example");
      assert.equal(await presented("a.example"), "CN=a.example");
      assert.equal(await presented("other.test"), "CN=a.example");
      assert.equal(await presented(undefined), "CN=a.example");
    } finally {
      server.close();
    }
  });

  it("refuses to build SNI options without the default host's material", () => {
    const empty = new Map<string, TlsMaterial>();
    assert.throws(() => buildSniOptions(empty, "a.example"), /no TLS material/);
  });
});

describe("log", () => {
  it("writes JSON lines at the configured level", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "info", stanzas: false, format: "json" }, { write: (s: string) => void lines.push(s) });
    log.debug("hidden");
    log.child({ module: "c2s" }).info({ ip: "::1" }, "accepted");
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual([entry.level, entry.module, entry.ip, entry.msg], [30, "c2s", "::1", "accepted"]);
  });

  it("pretty-prints one line per entry", () => {
    const lines: string[] = [];
    const log = createLogger({ level: "debug", stanzas: false, format: "pretty" }, { write: (s: string) => void lines.push(s) });
    log.child({ module: "c2s" }).warn({ ip: "::1", reason: "too many connections" }, "refused");
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^\d\d:\d\d:\d\d\.\d{3} WARN  c2s: refused ip=::1 reason="too many connections"\n$/);
    log.error({ err: new Error("boom") }, "failed");
    assert.match(lines[1]!, /ERROR failed\n {4}Error: boom\n {8}at /);
    assert.equal(formatLine("not json"), "not json");
  });

  it("nullLogger is silent", () => {
    assert.equal(nullLogger.level, "silent");
    nullLogger.error("nothing happens");
  });
});
