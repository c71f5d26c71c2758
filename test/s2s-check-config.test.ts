// `hearth check-config` on federation: what it reports (listeners, the certificate of each served domain,
// policy, routes, limits) and the warnings for settings that make federation fail.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { main } from "../src/cli/main.js";
import { loadConfig } from "../src/config/config.js";
import { federationReport } from "../src/s2s/report.js";
import { createTestCa, type TestCa } from "./helpers/test-ca.js";

describe("s2s: check-config", () => {
  let ca: TestCa;
  let dir: string;
  before(() => {
    ca = createTestCa();
    dir = mkdtempSync(path.join(tmpdir(), "hearth-s2s-check-"));
  });
  after(() => {
    ca?.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const config = (overrides: Record<string, unknown>) => loadConfig({ file: null, env: {}, cwd: dir, overrides: { dataDir: dir, ...overrides } as never });

  it("reports listeners, certificates per domain, policy, routes and limits", () => {
    const good = ca.issue("a.test");
    const { lines, warnings } = federationReport(config({
      hosts: ["a.test"], tls: { certs: { "a.test": good } },
      s2s: { port: 5269, directTlsPort: 5270, caFile: ca.caFile, deny: ["spam.test"], routes: { "b.test": "tls://10.0.0.2:5270" } },
    }));
    const text = lines.join("\n");
    assert.match(text, /STARTTLS 0\.0\.0\.0:5269|STARTTLS [^,]+:5269/);
    assert.match(text, /direct TLS [^,]+:5270/);
    assert.match(text, /certificate of a\.test: .*a\.test\.crt \(issued by CN=hearth test CA/);
    assert.match(text, /never spam\.test/);
    assert.match(text, /b\.test → tls:\/\/10\.0\.0\.2:5270/);
    assert.match(text, /bytes per element before authentication/);
    assert.deepEqual(warnings, []);
  });

  it("warns about a domain without certificate, a certificate for another name, certificates required without a CA, and a cluster without a shared secret", () => {
    const other = ca.issue("other.test");
    const { warnings } = federationReport(config({
      hosts: ["a.test", "b.test"], tls: { certs: { "b.test": other } },
      s2s: { requireValidCertificates: true },
      storage: { driver: "postgres", postgres: { url: "postgres://x@localhost/db" } },
      cluster: { redisUrl: "redis://127.0.0.1:6379" },
    }));
    const text = warnings.join("\n");
    assert.match(text, /no certificate configured for a\.test/);
    assert.match(text, /does not name b\.test/);
    assert.match(text, /requireValidCertificates with no s2s\.caFile/);
    assert.match(text, /cluster without s2s\.dialbackSecret/);
  });

  it("says federation is off without listeners, and prints the report from the CLI", async () => {
    assert.deepEqual(federationReport(config({ s2s: { port: null, directTlsPort: null } })).lines, ["federation: off (s2s.port and s2s.directTlsPort are null)"]);
    const file = path.join(dir, "hearth.yaml");
    writeFileSync(file, `hosts: [a.test]\ndataDir: ${JSON.stringify(dir)}\ns2s: { port: 5269, directTlsPort: 5270, requireTls: false }\n`);
    let stdout = "";
    const out = { write: (s: string) => { stdout += s; return true; } } as unknown as NodeJS.WritableStream;
    const code = await main(["check-config", "--config", file], { extensions: [], stdout: out, stderr: out });
    assert.equal(code, 0, stdout);
    assert.match(stdout, /federation: STARTTLS [^,]+:5269, direct TLS [^,]+:5270/);
    assert.match(stdout, /warning: s2s: requireTls is false/);
    assert.match(stdout, /configuration OK/);
  });
});
