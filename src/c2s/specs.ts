import type { ModuleDefinition } from "../modules/module.js";

/** What the stream layer itself implements (it is not a module), for the compliance table. */
export const streamLayer: ModuleDefinition<undefined> = {
  name: "core",
  xep: [
    { spec: "RFC 6120", title: "XMPP Core", status: "complete", note: "c2s and s2s: STARTTLS, SASL, binding, stream errors, restricted XML; federation with SRV resolution, dialback and SASL EXTERNAL" },
    { spec: "RFC 7395", title: "XMPP over WebSocket", status: "complete" },
    { spec: "RFC 7622", title: "XMPP Address Format", status: "complete" },
    { spec: "RFC 5802", title: "SCRAM (SCRAM-SHA-1)", status: "complete", note: "with -PLUS channel binding on TLS this process terminates" },
    { spec: "RFC 5929", title: "Channel Bindings for TLS (tls-server-end-point)", status: "complete" },
    { spec: "RFC 9266", title: "Channel Bindings for TLS 1.3 (tls-exporter)", status: "complete" },
    { spec: "XEP-0440", title: "SASL Channel-Binding Type Capability", version: "1.0.0", status: "complete" },
    { spec: "XEP-0474", title: "SASL SCRAM Downgrade Protection", version: "0.5.0", status: "complete", note: "the h attribute over SASL and SASL2 offers" },
    { spec: "RFC 7677", title: "SCRAM-SHA-256", status: "complete" },
    { spec: "XEP-0156", title: "Discovering Alternative XMPP Connection Methods", version: "1.4.0", status: "complete", note: "host-meta and host-meta.json list WebSocket and BOSH, with CORS" },
    { spec: "XEP-0124", title: "Bidirectional-streams Over Synchronous HTTP (BOSH)", version: "1.11.2", status: "partial", note: "wait, hold, requests, inactivity, polling, rid window and repeated answers, overactivity, terminate; no key sequencing, acks, pause or multiple streams" },
    { spec: "XEP-0206", title: "XMPP Over BOSH", version: "1.4", status: "complete", note: "the same client session as TCP and WebSocket, restart after SASL, stream errors as remote-stream-error" },
    { spec: "XEP-0198", title: "Stream Management", version: "1.6.1", status: "complete", note: "acks both ways and resumption (also inline in a SASL2 login), also after the node restarted or on another node of the cluster (a durable record per session)" },
    { spec: "XEP-0352", title: "Client State Indication", version: "1.0.0", status: "complete", note: "holds presence (latest per sender) and chat states while inactive" },
    { spec: "XEP-0199", title: "XMPP Ping", version: "2.0.1", status: "complete", note: "server pings idle clients" },
    { spec: "XEP-0368", title: "SRV records for XMPP over TLS", version: "1.1.0", status: "complete", note: "direct TLS listeners for clients and servers; outgoing s2s looks up _xmpps-server and _xmpp-server together" },
    { spec: "XEP-0178", title: "Best Practices for Use of SASL EXTERNAL with Certificates", version: "1.2", status: "complete", note: "s2s, both directions" },
    { spec: "XEP-0220", title: "Server Dialback", version: "1.1.1", status: "complete", note: "receiving, originating and authoritative roles; dialback errors; several domain pairs per stream" },
    { spec: "XEP-0185", title: "Dialback Key Generation and Validation", version: "1.0", status: "complete", note: "HMAC-SHA256 keys from a secret shared by every node" },
    { spec: "XEP-0388", title: "Extensible SASL Profile", version: "1.0.4", status: "partial", note: "SCRAM-SHA-1/256 (and -PLUS), PLAIN and HT-SHA-256-NONE/-ENDP/-EXPR; user agents recorded; XEP-0198 resumption inline; no <continue/> tasks (2FA)" },
    { spec: "XEP-0386", title: "Bind 2", version: "1.0.1", status: "complete", note: "inline stream management, client state and module features (carbons); no MAM catch-up metadata" },
    { spec: "XEP-0484", title: "Fast Authentication Streamlining Tokens", version: "0.2.0", status: "partial", note: "HT-SHA-256-NONE, and -EXPR/-ENDP bound to the TLS channel; per account and user agent, never stored usable; rotation, count, invalidate; revoked by a password change" },
    { spec: "RFC 7590", title: "Use of TLS in XMPP", status: "complete", note: "TLS 1.2 or later; STARTTLS and direct TLS, certificates checked for s2s" },
    { spec: "XEP-0478", title: "Stream Limits Advertisement", version: "0.2.0", status: "complete", note: "max-bytes; idle-seconds after authentication" },
  ],
  setup() {},
};
