// The mobile adapter as a module: protobuf over WebSocket (schemas/proto/hearth/mobile/v1), bridged to
// XMPP through the router and the timeline (DESIGN.md "Protocol mapping"). It translates: requests become
// stanzas or calls of the feature modules' services (blocking, conversations, retraction, rooms), and what
// those deliver or announce becomes pushes. Timeline rows reach every device of a user (carbons semantics
// for mobile devices).
import { defineModule } from "../modules/module.js";
import type { Session } from "../sessions/session.js";
import { mobileOptions, type MobileOptions } from "./options.js";
import { MobileSession } from "./session.js";
import { MobileGateway } from "./gateway.js";
import { Groups } from "./groups.js";
import type { MobileContext } from "./context.js";
import { contactFromItem, messageFromStanza, retractTarget } from "./bridge.js";
import { ConversationType, MarkerKind } from "./schema.js";
import { conversationPayload } from "./conversation.js";
import { handlers } from "./requests/index.js";
import type { RosterItem } from "../storage/types.js";

export { MobileSession } from "./session.js";
export { MobileGateway } from "./gateway.js";
export type { MobileOptions } from "./options.js";

const isMobile = (s: Session | null | undefined): s is MobileSession => s instanceof MobileSession;

export const mobileModule = defineModule<MobileOptions>({
  name: "mobile",
  depends: ["roster", "presence", "message", "blocking", "conversations", "retraction"],
  xep: [
    { spec: "hearth mobile v1", title: "Protobuf over WebSocket for mobile apps (schemas/proto/README.md)", status: "complete" },
    { spec: "XEP-0352", title: "Client State Indication", version: "1.0.0", status: "partial", note: "mobile background mode" },
    { spec: "XEP-0066", title: "Out of Band Data", version: "1.5", status: "partial", note: "jabber:x:oob URLs of mobile media messages, both ways; no iq:oob" },
  ],
  options: mobileOptions,
  async setup(api) {
    const opts = api.options;
    const { sessions } = api;
    const hosts = new Set(api.hosts);
    const devicesOf = (bare: string): MobileSession[] => sessions.resources(bare).filter(isMobile);
    const ctx: MobileContext = {
      api,
      opts,
      log: api.log,
      devices: api.openStore("devices"),
      blocking: api.use("blocking"),
      conversations: api.use("conversations"),
      retraction: api.use("retraction"),
      connections: new Set(),
      groups: new Groups(api, () => ctx),
      handlers,
      devicesOf,
    };
    const { groups } = ctx;
    api.provide("mobileGroups", groups);

    // ---- timeline rows reach every device of both users ----

    api.observe("message-delivered", (ev) => {
      // No device connected to this node: none of the sessions below can be one (every mobile session is in
      // `connections` from its start to its cleanup), and this runs for every message delivered.
      if (ev.duplicate || ctx.connections.size === 0) return;
      const stanza = ev.stanza;
      const isRetraction = retractTarget(stanza) !== null;
      const recipient = ev.to.bareString();
      const sender = ev.from.bareString();
      const meta = ev.meta;
      const fromGroups = groups.isGroupJidText(sender);
      if (meta && hosts.has(ev.to.domain)) {
        for (const s of devicesOf(recipient)) {
          if (ev.delivered.includes(s)) continue;
          s.onRow(meta.seq, () => fromGroups ? null : messageFromStanza(stanza, {
            seq: meta.seq, stanzaId: meta.stanzaId, ts: meta.ts, conversation: sender, type: ConversationType.DIRECT, outgoing: false, from: sender,
          }), isRetraction);
        }
      }
      const own = ev.senderMeta;
      if (own && hosts.has(ev.from.domain) && sender !== recipient) {
        // Carbons semantics for mobile devices: the user's other devices get what one of them sent.
        for (const s of devicesOf(sender)) {
          if (s === ev.origin) continue;
          s.onRow(own.seq, () => messageFromStanza(stanza, {
            seq: own.seq, stanzaId: own.stanzaId, ts: own.ts, conversation: recipient, type: ConversationType.DIRECT, outgoing: true, from: sender,
          }), isRetraction);
        }
      }
    });

    // ---- what the feature modules announce becomes pushes ----

    api.onUnload(ctx.conversations.watch((ev) => {
      if (ev.kind === "peer-marker") {
        const push = { conversation: ev.peer, kind: ev.marker === "displayed" ? MarkerKind.DISPLAYED : MarkerKind.DELIVERED, clientMsgId: ev.id, seq: ev.seq, from: ev.from };
        for (const s of devicesOf(ev.owner)) if (!s.background) s.push("markerPush", push);
        return;
      }
      // Read on one of the user's XMPP clients (a device's own ReadMarker is mirrored by its request).
      void conversationPayload(ctx, ev.owner, ev.conversation).then((payload) => {
        for (const s of devicesOf(ev.owner)) s.push("conversation", payload);
      }, (err) => api.log.error({ err }, "mobile: a conversation push failed"));
    }));

    // A block list changed (from a device or an XMPP client): a RosterPush carrying `blocked` to the
    // user's other devices, behind the roster pushes already queued for each.
    api.onUnload(ctx.blocking.watch(({ owner, jids, blocked, origin }) => {
      const targets = devicesOf(owner).filter((d) => d !== origin);
      if (targets.length === 0) return;
      const contacts = api.store.roster.get(owner);
      for (const d of targets) {
        d.queueRosterPush(async () => {
          const roster = await contacts;
          const items = jids.map((jid) => roster.items.find((i) => i.jid === jid) ?? notInRoster(jid));
          return items.map((item) => ({ contact: { ...contactFromItem(item), blocked }, version: roster.version }));
        });
      }
    }));

    // ---- the endpoint ----

    const gateway = new MobileGateway(ctx);
    await gateway.listen();
    if (opts.port === null) api.addHttpEndpoint(opts.path, (req, socket, head) => { gateway.handleUpgrade(req, socket, head); });
    let closing: Promise<void> | null = null;
    // The sessions' last acks are issued here; the store finishes what was issued before it closes.
    const close = () => (closing ??= gateway.close());
    api.observe("server-stopping", async () => { await close(); });
    api.onUnload(() => { void close(); });
    api.log.info({ port: gateway.port, path: opts.path }, "mobile endpoint listening");
  },
});

function notInRoster(jid: string): RosterItem {
  return { jid, name: null, subscription: "none", askOut: false, pendingIn: null, approved: false, inRoster: false, groups: [] };
}
