// Certificate reload (SIGHUP → Server.reloadTls): a session open before keeps working on its TLS
// connection, new connections (direct TLS and STARTTLS) see the new certificate, and a broken file
// leaves the old one in place.
import assert from "node:assert/strict";
import tls from "node:tls";
import { readFileSync, writeFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient } from "./helpers/raw-client.js";
import { createTestCa, type TestCa } from "./helpers/test-ca.js";
import { xml } from "../src/xml/element.js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { copyFileSync, mkdirSync } from "node:fs";
import { PassThrough } from "node:stream";
import { main } from "../src/cli/main.js";
import { extensions } from "../extensions/index.js";

/** The fingerprint of the certificate a new direct-TLS connection is shown. */
function presented(ts: TestServer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port: ts.tlsPort, servername: "localhost", rejectUnauthorized: false, ALPNProtocols: ["xmpp-client"] }, () => {
      resolve(s.getPeerX509Certificate()!.fingerprint256);
      s.destroy();
    });
    s.once("error", reject);
  });
}

const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

describe("TLS certificate reload", () => {
  let ca: TestCa;
  let ts: TestServer;
  let first: string;
  before(async () => {
    ca = createTestCa();
    const files = ca.issue("localhost");
    first = fingerprint(files.cert);
    ts = await startTestServer({ tls: { cert: files.cert, key: files.key } });
    await ts.accounts.create(ts.host, "juliet", "password");
  });
  after(async () => { await ts?.stop(); ca?.remove(); });

  it("keeps an open TLS session alive while new connections get the new certificate", async () => {
    assert.equal(await presented(ts), first);
    const before = await RawClient.connect(ts, { tls: true });
    await before.login("juliet", "password", "before");
    assert.equal(before.tlsSocket!.getPeerX509Certificate()!.fingerprint256, first);

    const files = ca.issue("localhost"); // a renewal: new key and certificate at the same paths
    const second = fingerprint(files.cert);
    assert.notEqual(second, first);
    await ts.server.reloadTls();

    assert.equal(await presented(ts), second, "a new direct-TLS connection sees the new certificate");
    const starttls = await RawClient.connect(ts);
    await starttls.open();
    await starttls.startTls();
    assert.equal(starttls.tlsSocket!.getPeerX509Certificate()!.fingerprint256, second, "STARTTLS too");
    starttls.close();

    // The session opened before the reload still answers on its connection.
    const pong = await before.iq(xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })));
    assert.equal(pong.attrs.type, "result");
    const after = await RawClient.connect(ts, { tls: true });
    await after.login("juliet", "password", "after");
    after.send(xml("message", { to: before.jid, type: "chat" }, xml("body", null, "still here?")));
    await before.receive((el) => el.name === "message" && el.getChildText("body") === "still here?");
    before.close();
    after.close();
  });

  it("keeps the current certificate when the new files are broken", async () => {
    const current = await presented(ts);
    writeFileSync(ts.config.tls.cert!, "not a certificate\n");
    await assert.rejects(ts.server.reloadTls(), /not a PEM certificate/);
    assert.equal(await presented(ts), current);
  });
});

describe("hearth start: SIGHUP", function () {
  this.timeout(30_000);
  it("reloads the certificates of a running server process", async () => {
    const ca = createTestCa();
    const dir = mkdtempSync(path.join(tmpdir(), "hearth-hup-"));
    const files = ca.issue("localhost");
    const config = path.join(dir, "hearth.yaml");
    writeFileSync(config, [
      "hosts: [localhost]", `dataDir: ${dir}/data`, "log: { level: warn }",
      "c2s: { bind: 127.0.0.1, port: 0, directTlsPort: 0 }", "s2s: { port: null, directTlsPort: null }", "http: { port: null }",
      `tls: { cert: ${files.cert}, key: ${files.key} }`, "",
    ].join("\n"));
    const bin = fileURLToPath(new URL("../../bin/hearth.js", import.meta.url));
    const p = spawn(process.execPath, [bin, "start", "--config", config], { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    const seen = (text: string) => new Promise<void>((resolve, reject) => {
      const check = () => { if (stderr.includes(text)) { p.stderr!.off("data", check); resolve(); } };
      p.stderr!.on("data", check);
      p.once("exit", (code) => reject(new Error(`exited with ${code}: ${stderr}`)));
      check();
    });
    p.stderr!.on("data", (d) => { stderr += d; });
    try {
      await seen("hearth: serving");
      p.kill("SIGHUP");
      await seen("hearth: TLS certificates reloaded");
      assert.equal(p.exitCode, null, "still running");
    } finally {
      p.kill("SIGTERM");
      await new Promise((r) => p.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
      ca.remove();
    }
  });
});

describe("hearth cert import", () => {
  let ca: TestCa;
  let dir: string;
  let ts: TestServer | null = null;
  before(() => {
    ca = createTestCa();
    dir = mkdtempSync(path.join(tmpdir(), "hearth-import-"));
  });
  after(async () => { await ts?.stop(); rmSync(dir, { recursive: true, force: true }); ca.remove(); });

  /** certbot's layout: live/<name>/fullchain.pem and privkey.pem. */
  function certbot(name: string, domain: string): string {
    const files = ca.issue(domain);
    const live = path.join(dir, "letsencrypt", "live", name);
    mkdirSync(live, { recursive: true });
    copyFileSync(files.cert, path.join(live, "fullchain.pem"));
    copyFileSync(files.key, path.join(live, "privkey.pem"));
    return fingerprint(files.cert);
  }

  async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const stdout = new PassThrough(), stderr = new PassThrough();
    let out = "", err = "";
    stdout.on("data", (d) => { out += d; });
    stderr.on("data", (d) => { err += d; });
    const code = await main(args, { extensions, stdout, stderr });
    return { code, out, err };
  }

  it("picks the certificate whose subjectAltName covers each served domain; the server presents it, and takes a new import on reload", async () => {
    certbot("other.example", "other.example");
    const first = certbot("localhost", "localhost");
    const config = path.join(dir, "hearth.yaml");
    writeFileSync(config, `hosts: [localhost]\ndataDir: ${path.join(dir, "data")}\n`);
    const r = await run("cert", "import", path.join(dir, "letsencrypt"), "--config", config);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^localhost: imported from .*live\/localhost /m);

    ts = await startTestServer({}, { dataDir: path.join(dir, "data") });
    assert.equal(await presented(ts), first);

    const renewed = certbot("localhost", "localhost");
    assert.equal((await run("cert", "import", path.join(dir, "letsencrypt"), "--config", config)).code, 0);
    await ts.server.reloadTls();
    assert.equal(await presented(ts), renewed);
  });

  it("fails, naming the domain, when no certificate covers it", async () => {
    const config = path.join(dir, "other.yaml");
    writeFileSync(config, `hosts: [nowhere.example]\ndataDir: ${path.join(dir, "data2")}\n`);
    const r = await run("cert", "import", path.join(dir, "letsencrypt"), "--config", config);
    assert.equal(r.code, 1);
    assert.match(r.err, /no valid certificate .* covers nowhere\.example/);
  });
});
