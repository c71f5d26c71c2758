// `hearth check-config` on external components (XEP-0114): the listener, the domains (never the secrets)
// and the warnings for a component port reachable from the network or useless.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { main } from "../src/cli/main.js";
import { extensions } from "../extensions/index.js";
import { loadConfig } from "../src/config/config.js";
import { componentsReport } from "../src/component/report.js";

const SECRET = "a long random secret for the gateway";

describe("XEP-0114 components: check-config (and no secret in its output)", () => {
  let dir: string;
  before(() => { dir = mkdtempSync(path.join(tmpdir(), "hearth-component-check-")); });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const config = (overrides: Record<string, unknown>) => loadConfig({ file: null, env: {}, cwd: dir, overrides: { dataDir: dir, ...overrides } as never });

  it("reports the listener, the domains and the limits; no warning on loopback", () => {
    const { lines, warnings } = componentsReport(config({ components: { port: 5347, secrets: { "irc.example.com": SECRET, "sms.example.com": SECRET } } }));
    const text = lines.join("\n");
    assert.match(text, /components: 127\.0\.0\.1:5347/);
    assert.match(text, /domains: irc\.example\.com, sms\.example\.com/);
    assert.match(text, /1000 stanzas\/s per component \(burst 5000\); pinged after 60 s of silence, dropped 30 s later/);
    assert.ok(!text.includes(SECRET));
    assert.deepEqual(warnings, []);
  });

  it("warns about a non-loopback bind (no TLS), an open port without domains, and domains without a port", () => {
    const exposed = componentsReport(config({ components: { bind: "0.0.0.0", port: 5347, secrets: { "irc.example.com": SECRET } } }));
    assert.match(exposed.warnings.join("\n"), /components\.bind is 0\.0\.0\.0, not loopback: XEP-0114 has no TLS/);
    assert.match(componentsReport(config({ components: { port: 5347 } })).warnings.join("\n"), /components\.secrets is empty/);
    assert.match(componentsReport(config({ components: { secrets: { "irc.example.com": SECRET } } })).warnings.join("\n"), /components\.port is null: no component can connect/);
    assert.deepEqual(componentsReport(config({})).lines, ["components: off (components.port is null, no components.secrets)"]);
  });

  it("prints the section and its warnings from the CLI", async () => {
    const file = path.join(dir, "hearth.yaml");
    writeFileSync(file, `dataDir: ${JSON.stringify(dir)}\ncomponents: { bind: 10.0.0.5, port: 5347, secrets: { irc.example.com: "${SECRET}" } }\n`);
    let stdout = "";
    const out = { write: (s: string) => { stdout += s; return true; } } as unknown as NodeJS.WritableStream;
    const code = await main(["check-config", "--config", file], { extensions: [], stdout: out, stderr: out });
    assert.equal(code, 0, stdout);
    assert.match(stdout, /components: 10\.0\.0\.5:5347/);
    assert.match(stdout, /warning: components: components\.bind is 10\.0\.0\.5, not loopback/);
    assert.match(stdout, /"irc\.example\.com": "\(not shown\)"/);
    assert.ok(!stdout.includes(SECRET), "the secret is not printed");
    assert.match(stdout, /configuration OK/);
  });

  it("prints no secret of any kind: API keys, the dialback secret, passwords in store and Redis URLs, module secrets", async () => {
    const file = path.join(dir, "secrets.yaml");
    const apiKey = "k3y0123456789abcdef0123456789abcdef0123";
    const dialback = "the dialback secret of this server";
    writeFileSync(file, [
      `dataDir: ${JSON.stringify(dir)}`,
      `api: { keys: { backend: "${apiKey}" } }`,
      `s2s: { dialbackSecret: "${dialback}" }`,
      `storage: { driver: postgres, postgres: { url: "postgres://hearth:pg-password-123@127.0.0.1:5432/hearth" } }`,
      `cluster: { redisUrl: "redis://:redis-password-456@127.0.0.1:6379" }`,
      `modules: { push: { webhook: { url: "http://127.0.0.1:9/hook", secret: "webhook-secret-789" } } }`,
    ].join("\n") + "\n");
    let stdout = "";
    const out = { write: (s: string) => { stdout += s; return true; } } as unknown as NodeJS.WritableStream;
    const code = await main(["check-config", "--config", file], { extensions, stdout: out, stderr: out });
    assert.equal(code, 0, stdout);
    for (const secret of [apiKey, dialback, "pg-password-123", "redis-password-456", "webhook-secret-789"]) assert.ok(!stdout.includes(secret), `${secret} was printed`);
    assert.match(stdout, /"backend": "\(not shown\)"/);
    assert.match(stdout, /postgres:\/\/hearth:\(not%20shown\)@127\.0\.0\.1:5432\/hearth|postgres:\/\/hearth:%28not%20shown%29@127\.0\.0\.1:5432\/hearth/);
  });

  it("names a bad secret's key in the error, never its value", () => {
    assert.throws(() => config({ s2s: { dialbackSecret: "too-short-9" } }), (err: Error) => /s2s\.dialbackSecret/.test(err.message) && !err.message.includes("too-short-9"));
  });
});
