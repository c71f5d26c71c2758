// A private certificate authority for federation tests: a CA and certificates for named domains, made
// with the openssl CLI (EC P-256, so it takes milliseconds), in a temporary directory.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface TestCa {
  dir: string;
  caFile: string;
  /** Issues a certificate for `domain` (DNS-ID in subjectAltName; server and client use). */
  issue(domain: string): { cert: string; key: string };
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

export function createTestCa(): TestCa {
  const dir = mkdtempSync(path.join(tmpdir(), "hearth-ca-"));
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key"], dir);
  openssl(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "30", "-subj", "/CN=hearth test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem"], dir);
  return {
    dir,
    caFile: path.join(dir, "ca.pem"),
    issue(domain) {
      const ext = path.join(dir, `${domain}.ext`);
      writeFileSync(ext, `subjectAltName=DNS:${domain}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n`);
      openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${domain}.key`], dir);
      openssl(["req", "-new", "-key", `${domain}.key`, "-subj", `/CN=${domain}`, "-out", `${domain}.csr`], dir);
      openssl(["x509", "-req", "-in", `${domain}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30", "-sha256",
        "-extfile", ext, "-out", `${domain}.crt`], dir);
      return { cert: path.join(dir, `${domain}.crt`), key: path.join(dir, `${domain}.key`) };
    },
    remove() { rmSync(dir, { recursive: true, force: true }); },
  };
}
