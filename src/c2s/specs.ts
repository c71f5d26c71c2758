import type { ModuleDefinition } from "../modules/module.js";

/** What the stream layer itself implements (it is not a module), for the compliance table. */
export const streamLayer: ModuleDefinition<undefined> = {
  name: "core",
  xep: [
    { spec: "RFC 6120", title: "XMPP Core", status: "complete", note: "c2s: STARTTLS, SASL, binding, stream errors, restricted XML; no s2s yet" },
    { spec: "RFC 7395", title: "XMPP over WebSocket", status: "complete" },
    { spec: "RFC 7622", title: "XMPP Address Format", status: "complete" },
    { spec: "RFC 5802", title: "SCRAM (SCRAM-SHA-1)", status: "complete", note: "no channel binding (-PLUS)" },
    { spec: "RFC 7677", title: "SCRAM-SHA-256", status: "complete" },
    { spec: "XEP-0156", title: "Discovering Alternative XMPP Connection Methods", version: "1.4.0", status: "partial", note: "host-meta for WebSocket" },
    { spec: "XEP-0198", title: "Stream Management", version: "1.6.1", status: "complete", note: "acks both ways and resumption, also after the node restarted or on another node of the cluster (a durable record per session)" },
    { spec: "XEP-0352", title: "Client State Indication", version: "1.0.0", status: "complete", note: "holds presence (latest per sender) and chat states while inactive" },
    { spec: "XEP-0199", title: "XMPP Ping", version: "2.0.1", status: "complete", note: "server pings idle clients" },
    { spec: "XEP-0368", title: "SRV records for XMPP over TLS", version: "1.1.0", status: "complete", note: "direct TLS listener" },
  ],
  setup() {},
};
