// XEP-0199: XMPP Ping. The server answers pings to itself and, on the user's behalf, to the user's own
// bare JID (XEP-0199 §4.2 client-to-server ping).
import { NS } from "../../src/xml/ns.js";
import { defineModule } from "../../src/modules/module.js";


export const ping = defineModule({
  name: "ping",
  xep: [{ spec: "XEP-0199", title: "XMPP Ping", version: "2.0.1", status: "complete" }],
  setup(api) {
    // XEP-0199 §5: support is advertised through service discovery.
    api.addFeature(NS.ping);
    api.onIq("get", ["host", "self"], NS.ping, "ping", () => true);
  },
});
