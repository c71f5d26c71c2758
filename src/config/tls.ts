// TLS material per served domain: configured PEM files, or a self-signed certificate generated on
// first start (development only) and kept under <dataDir>/tls/.
import { createPrivateKey, generateKeyPair, randomBytes, X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import tls from "node:tls";
import { generate } from "selfsigned";
import type { Logger } from "../log.js";
import { ConfigError, type Config } from "./config.js";
import { formatKeyPath } from "./schema.js";

export interface TlsMaterial {
  key: string;
  cert: string;
  selfSigned: boolean;
}

const SELF_SIGNED_DAYS = 3650;

/** Where `hearth cert import` puts a domain's certificate; used when the config names none for it. */
export function importedCertificatePaths(dataDir: string, domain: string): { cert: string; key: string } {
  return { cert: path.join(dataDir, "certs", `${domain}.crt`), key: path.join(dataDir, "certs", `${domain}.key`) };
}
const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

/**
 * TLS material for every served host, plus any extra domain listed in `tls.certs` (e.g. a MUC
 * component's subdomain with its own certificate).
 */
export async function loadTls(config: Config, log: Logger): Promise<Map<string, TlsMaterial>> {
  const material = new Map<string, TlsMaterial>();
  const extraDomains = Object.keys(config.tls.certs).filter((domain) => !config.hosts.includes(domain));
  let shared: TlsMaterial | undefined;
  for (const domain of [...config.hosts, ...extraDomains]) {
    const own = config.tls.certs[domain];
    let entry: TlsMaterial;
    if (own !== undefined) {
      entry = await readConfigured(own.cert, own.key, ["tls", "certs", domain, "cert"], ["tls", "certs", domain, "key"]);
    } else if (config.tls.cert !== null && config.tls.key !== null) {
      shared ??= await readConfigured(config.tls.cert, config.tls.key, ["tls", "cert"], ["tls", "key"]);
      entry = shared;
    } else {
      const imported = importedCertificatePaths(config.dataDir, domain);
      entry = existsSync(imported.cert)
        ? await readConfigured(imported.cert, imported.key, ["dataDir"], ["dataDir"])
        : await selfSigned(domain, config.dataDir, log);
    }
    if (!entry.selfSigned) warnAboutCertificate(entry.cert, domain, log);
    material.set(domain, entry);
  }
  return material;
}

async function readConfigured(
  certFile: string,
  keyFile: string,
  certKey: string[],
  keyKey: string[],
): Promise<TlsMaterial> {
  const cert = await readPem(certFile, certKey);
  const key = await readPem(keyFile, keyKey);
  const problem = mismatch(cert, key);
  if (problem !== undefined) {
    const name = problem.key === "cert" ? formatKeyPath(certKey) : formatKeyPath(keyKey);
    const file = problem.key === "cert" ? certFile : keyFile;
    throw new ConfigError(name, `${name}: ${file}: ${problem.message}`);
  }
  return { cert, key, selfSigned: false };
}

async function readPem(file: string, key: string[]): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    const name = formatKeyPath(key);
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "file not found" : code === "EACCES" ? "permission denied" : (err as Error).message;
    throw new ConfigError(name, `${name}: cannot read ${file}: ${why}`);
  }
}

/** Why a certificate and key cannot be used together, or undefined if they can. */
function mismatch(cert: string, key: string): { key: "cert" | "key"; message: string } | undefined {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    return { key: "cert", message: `not a PEM certificate (${(err as Error).message})` };
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      return { key: "key", message: "private key does not match the certificate" };
    }
  } catch (err) {
    return { key: "key", message: `not an unencrypted PEM private key (${(err as Error).message})` };
  }
  return undefined;
}

function warnAboutCertificate(cert: string, domain: string, log: Logger): void {
  const x509 = new X509Certificate(cert);
  if (x509.checkHost(domain) === undefined) {
    log.warn({ domain, subject: x509.subject, subjectAltName: x509.subjectAltName }, "TLS certificate does not cover this domain");
  }
  const remaining = Date.parse(x509.validTo) - Date.now();
  if (remaining <= 0) log.warn({ domain, validTo: x509.validTo }, "TLS certificate has expired");
  else if (remaining < EXPIRY_WARNING_DAYS * DAY_MS) log.warn({ domain, validTo: x509.validTo }, "TLS certificate expires soon");
}

// ---------------------------------------------------------------------------------------------
// Self-signed certificates for development

async function selfSigned(domain: string, dataDir: string, log: Logger): Promise<TlsMaterial> {
  const dir = path.join(dataDir, "tls");
  const keyFile = path.join(dir, `${domain}.key`);
  const certFile = path.join(dir, `${domain}.crt`);
  const existing = await readExisting(certFile, keyFile);
  let material: TlsMaterial | undefined;
  if (existing !== undefined) {
    const problem = mismatch(existing.cert, existing.key)?.message ?? unusableFor(existing.cert, domain);
    if (problem === undefined) material = { ...existing, selfSigned: true };
    else log.warn({ domain, certFile, problem }, "replacing unusable self-signed certificate");
  }
  if (material === undefined) {
    material = await generateSelfSigned(domain);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeAtomically(keyFile, material.key, 0o600);
    await writeAtomically(certFile, material.cert, 0o644);
  }
  log.warn(
    { domain, certFile },
    "using a self-signed TLS certificate, for development only: clients will not trust it; configure tls.certs or tls.cert/tls.key for production",
  );
  return material;
}

async function readExisting(certFile: string, keyFile: string): Promise<{ cert: string; key: string } | undefined> {
  try {
    return { cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ConfigError("dataDir", `dataDir: cannot read generated certificate: ${(err as Error).message}`);
  }
}

function unusableFor(cert: string, domain: string): string | undefined {
  const x509 = new X509Certificate(cert);
  if (x509.checkHost(domain) === undefined) return "does not cover the domain";
  if (Date.parse(x509.validTo) - Date.now() < EXPIRY_WARNING_DAYS * DAY_MS) return "expired or about to expire";
  return undefined;
}

async function generateSelfSigned(domain: string): Promise<TlsMaterial> {
  // node-forge's RSA key generation is slow pure JavaScript; let OpenSSL make the key off the main
  // thread and use forge only to sign the certificate. (forge cannot sign with EC keys.)
  const keyPair = await new Promise<{ publicKey: string; privateKey: string }>((resolve, reject) => {
    generateKeyPair(
      "rsa",
      {
        modulusLength: 2048,
        publicKeyEncoding: { type: "spki", format: "pem" },
        privateKeyEncoding: { type: "pkcs1", format: "pem" },
      },
      (err, publicKey, privateKey) => (err ? reject(err) : resolve({ publicKey, privateKey })),
    );
  });
  const options = {
    days: SELF_SIGNED_DAYS,
    algorithm: "sha256",
    keyPair, // supported by selfsigned 2.x, missing from its type declarations
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
      { name: "extKeyUsage", serverAuth: true, clientAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: domain }, { type: 2, value: `*.${domain}` }] },
    ],
  };
  const result = generate([{ name: "commonName", value: domain }], options as Parameters<typeof generate>[1]);
  return { key: result.private, cert: result.cert, selfSigned: true };
}

async function writeAtomically(file: string, text: string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(temp, text, { mode, flag: "wx" });
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Choosing a certificate per connection

/** Material for `servername`: exact domain, else its parent (covered by `*.parent`), else undefined. */
export function selectTlsMaterial(material: Map<string, TlsMaterial>, servername: string): TlsMaterial | undefined {
  const name = servername.toLowerCase().replace(/\.$/, "");
  const exact = material.get(name);
  if (exact !== undefined) return exact;
  const dot = name.indexOf(".");
  return dot === -1 ? undefined : material.get(name.slice(dot + 1));
}

/**
 * Server options (for tls.createServer or new tls.TLSSocket) presenting the default host's
 * certificate unless SNI names another served domain.
 */
export function buildSniOptions(material: Map<string, TlsMaterial>, defaultHost: string): tls.TlsOptions {
  const initial = material.get(defaultHost);
  if (initial === undefined) throw new Error(`no TLS material for default host ${defaultHost}`);
  const contexts = new Map<TlsMaterial, tls.SecureContext>();
  const contextFor = (entry: TlsMaterial): tls.SecureContext => {
    let context = contexts.get(entry);
    if (context === undefined) {
      context = tls.createSecureContext({ key: entry.key, cert: entry.cert, minVersion: "TLSv1.2" });
      contexts.set(entry, context);
    }
    return context;
  };
  for (const entry of material.values()) contextFor(entry);
  // The map is read at each handshake, so a reload (replaceTlsMaterial) applies to new connections.
  return {
    key: initial.key,
    cert: initial.cert,
    minVersion: "TLSv1.2",
    SNICallback(servername, callback) {
      callback(null, contextFor(selectTlsMaterial(material, servername) ?? material.get(defaultHost) ?? initial));
    },
  };
}

/**
 * Swaps in freshly loaded material (SIGHUP): new handshakes, SNI or not, present it; established
 * connections keep the session they negotiated.
 */
export function replaceTlsMaterial(material: Map<string, TlsMaterial>, fresh: Map<string, TlsMaterial>, options: tls.TlsOptions, defaultHost: string): void {
  material.clear();
  for (const [domain, entry] of fresh) material.set(domain, entry);
  const def = material.get(defaultHost);
  if (def !== undefined) { options.key = def.key; options.cert = def.cert; }
}

/** The expiry warnings again (the server repeats them daily). */
export function checkCertificates(material: Map<string, TlsMaterial>, log: Logger): void {
  for (const [domain, entry] of material) if (!entry.selfSigned) warnAboutCertificate(entry.cert, domain, log);
}
