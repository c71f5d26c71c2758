// XEP-0199: XMPP Ping. The server answers pings to itself and, on the user's behalf, to the user's own
// bare JID (XEP-0199 §4.2 client-to-server ping).
import { defineModule } from "../../src/modules/module.js";

export const NS_PING = "urn:xmpp:ping";

export const ping = defineModule({
  name: "ping",
  xep: [{ spec: "XEP-0199", title: "XMPP Ping", version: "2.0.1", status: "complete" }],
  setup(api) {
    // XEP-0199 §5: support is advertised through service discovery.
    api.addFeature(NS_PING);
    api.onIq("get", ["host", "self"], NS_PING, "ping", () => true);
  },
});
