// Channel-binding data of a server-side TLS connection for SCRAM-*-PLUS: `tls-exporter` (RFC 9266, TLS 1.3
// only) and `tls-server-end-point` (RFC 5929 §4), and the XEP-0440 stream feature that names them.
import { createHash } from "node:crypto";
import type { TLSSocket } from "node:tls";
import { xml, type Element } from "../../xml/element.js";
import type { ChannelBinding } from "./scram.js";

export const NS_SASL_CB = "urn:xmpp:sasl-cb:0";
const EXPORTER_LABEL = "EXPORTER-Channel-Binding";

// RFC 5929 §4.1: the certificate's signature hash, except that MD5 and SHA-1 become SHA-256. DER encodings
// of the signature-algorithm OIDs that name a hash other than SHA-256.
const SIGNATURE_HASHES: ReadonlyArray<readonly [Buffer, "sha384" | "sha512"]> = [
  [Buffer.from("06092a864886f70d01010c", "hex"), "sha384"], // sha384WithRSAEncryption
  [Buffer.from("06092a864886f70d01010d", "hex"), "sha512"], // sha512WithRSAEncryption
  [Buffer.from("06082a8648ce3d040303", "hex"), "sha384"],   // ecdsa-with-SHA384
  [Buffer.from("06082a8648ce3d040304", "hex"), "sha512"],   // ecdsa-with-SHA512
];

/** RFC 5929 §4: the hash of the server's certificate (DER) with the hash of its signature algorithm. */
export function serverEndPoint(certificateDer: Buffer): Buffer {
  const found = SIGNATURE_HASHES.find(([oid]) => certificateDer.includes(oid));
  return createHash(found ? found[1] : "sha256").update(certificateDer).digest();
}

/** RFC 5929 §3: the first Finished message of the handshake (the client's, unless the session was resumed). */
function tlsUnique(socket: TLSSocket): Buffer | null {
  return (socket.isSessionReused() ? socket.getFinished() : socket.getPeerFinished()) ?? null;
}

/** The binding types a TLS connection offers, or null when it offers none. */
export function tlsChannelBinding(socket: TLSSocket): ChannelBinding | null {
  const types: string[] = [];
  const tls13 = socket.getProtocol() === "TLSv1.3";
  if (tls13) types.push("tls-exporter");
  // RFC 9266 §3: tls-unique is not defined for TLS 1.3, so it is advertised for older versions only.
  else types.push("tls-unique");
  const cert = socket.getCertificate();
  const der = cert && "raw" in cert ? (cert.raw as Buffer) : null;
  if (der) types.push("tls-server-end-point");
  if (!types.length) return null;
  return {
    types,
    data(type) {
      // RFC 9266 §2: 32 bytes, the label above and an empty context.
      if (type === "tls-exporter" && types.includes(type)) return socket.exportKeyingMaterial(32, EXPORTER_LABEL, Buffer.alloc(0));
      if (type === "tls-server-end-point" && der) return serverEndPoint(der);
      // COMPAT: clients that predate RFC 9266 (slixmpp 1.8 through Python's ssl) ask for tls-unique whatever
      // the TLS version, and would fall back to a refused "y"; on TLS 1.3 the client's Finished still MACs
      // the whole handshake (server certificate included), and this server does no 0-RTT.
      if (type === "tls-unique") return tlsUnique(socket);
      return null;
    },
  };
}

/** XEP-0440 §2: the `<sasl-channel-binding/>` stream feature. */
export function channelBindingFeature(channel: ChannelBinding): Element {
  return xml("sasl-channel-binding", { xmlns: NS_SASL_CB }, ...channel.types.map((type) => xml("channel-binding", { type })));
}

/**
 * XEP-0474 §3.1: the advertised mechanisms, sorted by octets and joined with %x1E; then, when XEP-0440
 * advertised binding types, %x1F and the sorted types joined with %x1E.
 */
export function downgradeProtectionInput(mechanisms: readonly string[], channel: ChannelBinding | null): string {
  const sort = (a: readonly string[]) => [...a].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  let s = sort(mechanisms).join("\x1e");
  if (channel) s += `\x1f${sort(channel.types).join("\x1e")}`;
  return s;
}
