// TLS for server connections: our certificate per local domain, the peer's checked against the trust
// store and, by name, against the domain it claims (RFC 6125 DNS-ID, as RFC 6120 §13.7.2 asks).
import { readFile } from "node:fs/promises";
import type net from "node:net";
import tls from "node:tls";
import { selectTlsMaterial, type TlsMaterial } from "../config/tls.js";
import { ConfigError, type Config } from "../config/config.js";

export const ALPN_XMPP_SERVER = "xmpp-server";

export interface S2sTls {
  /**
   * The server side of STARTTLS over `raw`: our certificate by SNI, the peer's requested and checked.
   * (Through a tls.Server: a bare `new TLSSocket({ isServer })` never sets `authorized`.)
   */
  accept(raw: net.Socket, done: (secure: tls.TLSSocket | null) => void): void;
  /** A listener for direct TLS (XEP-0368): the same certificates and peer checks, ALPN `xmpp-server`. */
  directServer(onSecure: (secure: tls.TLSSocket) => void): tls.Server;
  /** Options for the client side, presenting the certificate of `local`. */
  client(local: string, remote: string): tls.ConnectionOptions;
}

export async function buildS2sTls(config: Config, material: Map<string, TlsMaterial>): Promise<S2sTls> {
  let ca: string | undefined;
  if (config.s2s.caFile !== null) {
    try {
      ca = await readFile(config.s2s.caFile, "utf8");
    } catch (err) {
      throw new ConfigError("s2s.caFile", `s2s.caFile: cannot read ${config.s2s.caFile}: ${(err as Error).message}`);
    }
  }
  const fallback = material.get(config.hosts[0])!;
  const contexts = new Map<TlsMaterial, tls.SecureContext>();
  const contextFor = (m: TlsMaterial): tls.SecureContext => {
    let c = contexts.get(m);
    if (!c) contexts.set(m, (c = tls.createSecureContext({ key: m.key, cert: m.cert, ca, minVersion: "TLSv1.2" })));
    return c;
  };
  const materialFor = (domain: string) => selectTlsMaterial(material, domain) ?? fallback;
  const serverOptions: tls.TlsOptions = {
    key: fallback.key, cert: fallback.cert, ca, minVersion: "TLSv1.2",
    requestCert: true,
    rejectUnauthorized: false,
    SNICallback(servername, cb) { cb(null, contextFor(materialFor(servername))); },
  };
  return {
    accept(raw, done) {
      const server = tls.createServer(serverOptions);
      server.once("secureConnection", (secure) => done(secure));
      server.once("tlsClientError", () => done(null));
      server.emit("connection", raw);
    },
    directServer(onSecure) {
      // XEP-0368 §3: ALPN "xmpp-server"; a client offering only other protocols fails the handshake.
      const server = tls.createServer({ ...serverOptions, ALPNProtocols: [ALPN_XMPP_SERVER], handshakeTimeout: config.limits.authTimeoutSeconds * 1000 }, onSecure);
      server.on("tlsClientError", (_err, socket) => socket.destroy());
      return server;
    },
    client(local, remote) {
      return { secureContext: contextFor(materialFor(local)), servername: remote, rejectUnauthorized: false };
    },
  };
}

/** Whether the peer's certificate chains to a trusted root and names `domain` (RFC 6125 §6.4). */
export function certificateValidFor(socket: tls.TLSSocket, domain: string): boolean {
  if (!socket.authorized) return false;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return false;
  return tls.checkServerIdentity(domain, cert) === undefined;
}
