// `hearth cert import DIR`: certificates from a certbot (Let's Encrypt) directory, chosen per served
// domain by their subjectAltName, copied to <dataDir>/certs/<domain>.crt|.key, where the server looks
// before it would generate a self-signed one. A running server picks them up on SIGHUP.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Config } from "../config/config.js";
import { importedCertificatePaths } from "../config/tls.js";

export interface Imported { domain: string; from: string; validTo: string }

interface Candidate { dir: string; cert: string; key: string; x509: X509Certificate }

/** certbot keeps one live/<name>/ per certificate, with fullchain.pem and privkey.pem. */
function candidates(root: string): Candidate[] {
  const base = existsSync(path.join(root, "live")) ? path.join(root, "live") : root;
  const dirs = existsSync(path.join(base, "fullchain.pem")) ? [base]
    : readdirSync(base, { withFileTypes: true }).filter((e) => e.isDirectory() || e.isSymbolicLink()).map((e) => path.join(base, e.name));
  const out: Candidate[] = [];
  for (const dir of dirs) {
    const certFile = path.join(dir, "fullchain.pem"), keyFile = path.join(dir, "privkey.pem");
    if (!existsSync(certFile) || !existsSync(keyFile)) continue;
    const cert = readFileSync(certFile, "utf8"), key = readFileSync(keyFile, "utf8");
    const x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error(`${dir}: privkey.pem does not match fullchain.pem`);
    out.push({ dir, cert, key, x509 });
  }
  return out;
}

/** Imports a certificate for every served domain one covers (the one valid longest); returns what it did. */
export function importCertificates(root: string, config: Config): { imported: Imported[]; missing: string[] } {
  if (!existsSync(root)) throw new Error(`${root} does not exist`);
  const found = candidates(root);
  const domains = [...new Set([...config.hosts, ...Object.keys(config.tls.certs)])];
  const imported: Imported[] = [];
  const missing: string[] = [];
  for (const domain of domains) {
    const best = found
      .filter((c) => c.x509.checkHost(domain) !== undefined && Date.parse(c.x509.validTo) > Date.now())
      .sort((a, b) => Date.parse(b.x509.validTo) - Date.parse(a.x509.validTo))[0];
    if (best === undefined) { missing.push(domain); continue; }
    const { cert, key } = importedCertificatePaths(config.dataDir, domain);
    mkdirSync(path.dirname(cert), { recursive: true, mode: 0o700 });
    // Written aside and renamed, so a server reloading meanwhile never reads half a file.
    writeFileSync(`${key}.tmp`, best.key, { mode: 0o600 });
    writeFileSync(`${cert}.tmp`, best.cert, { mode: 0o644 });
    renameSync(`${key}.tmp`, key);
    renameSync(`${cert}.tmp`, cert);
    imported.push({ domain, from: best.dir, validTo: best.x509.validTo });
  }
  return { imported, missing };
}
