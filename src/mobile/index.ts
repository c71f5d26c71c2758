// The mobile adapter as a module: protobuf over WebSocket (schemas/proto/hearth/mobile/v1), bridged to
// XMPP through the router and the timeline (DESIGN.md "Protocol mapping"). Besides the listener it
// hooks what both protocols share: timeline rows reach every device of a user (carbons semantics for
// mobile devices), receipts and chat markers update read state, retractions leave tombstones, and
// block lists filter delivery whichever protocol a stanza came from.
import { defineModule } from "../modules/module.js";
import { StanzaError } from "../xml/stanza.js";
import type { StanzaEvent } from "../events/hooks.js";
import type { Session } from "../sessions/session.js";
import { mobileOptions, type MobileOptions } from "./options.js";
import { MobileSession } from "./session.js";
import { MobileGateway } from "./gateway.js";
import { ConversationStore } from "./conversations.js";
import { BlockLists, blocks } from "./blocking.js";
import { Groups } from "./groups.js";
import { findByMessageId, type MobileContext } from "./context.js";
import { MNS, messageFromStanza, retractTarget } from "./bridge.js";
import { ConversationType, MarkerKind } from "./schema.js";
import { conversationPayload } from "./requests/messages.js";
import { OrderedKeyValue } from "./ordered-kv.js";

export { MobileSession } from "./session.js";
export { MobileGateway } from "./gateway.js";
export type { MobileOptions } from "./options.js";

const isMobile = (s: Session | null | undefined): s is MobileSession => s instanceof MobileSession;

export const mobileModule = defineModule<MobileOptions>({
  name: "mobile",
  depends: ["roster", "presence", "message"],
  xep: [
    { spec: "hearth mobile v1", title: "Protobuf over WebSocket for mobile apps (schemas/proto/README.md)", status: "complete" },
    { spec: "XEP-0184", title: "Message Delivery Receipts", version: "1.4.0", status: "partial", note: "mobile devices send and receive them" },
    { spec: "XEP-0333", title: "Displayed Markers", version: "0.4.2", status: "partial", note: "read state shared with mobile devices" },
    { spec: "XEP-0352", title: "Client State Indication", version: "1.0.0", status: "partial", note: "mobile background mode" },
    { spec: "XEP-0424", title: "Message Retraction", version: "0.4.2", status: "partial", note: "recall window enforced; tombstones for mobile history" },
    { spec: "XEP-0191", title: "Blocking Command", version: "1.3", status: "partial", note: "block semantics for mobile block lists; no XMPP iq yet" },
  ],
  options: mobileOptions,
  async setup(api) {
    const opts = api.options;
    const { router, sessions } = api;
    const hosts = new Set(api.hosts);
    const groups: Groups = new Groups(api, () => ctx.conversations);
    const ctx: MobileContext = {
      api,
      opts,
      log: api.log,
      devices: new OrderedKeyValue(api.openStore("devices")),
      tokens: api.openStore("tokens"),
      conversations: new ConversationStore(api.openStore("conversations"), api.store.timeline, (peer) => groups.isGroupDomain(peer.slice(peer.indexOf("@") + 1))),
      blocking: new BlockLists(api.openStore("blocking")),
      connections: new Set(),
      groups,
    };
    const mobileOf = (bare: string): MobileSession[] => sessions.resources(bare).filter(isMobile);

    // ---- timeline rows reach every device of both users ----

    api.observe("message-delivered", (ev) => {
      if (ev.duplicate) return false;
      const stanza = ev.stanza;
      const target = retractTarget(stanza);
      const recipient = ev.to.bareString();
      const sender = ev.from.bareString();
      const meta = ev.meta;
      const fromGroups = groups.isGroupDomain(ev.from.domain);
      if (meta && hosts.has(ev.to.domain)) {
        for (const s of mobileOf(recipient)) {
          if (ev.delivered.includes(s)) continue;
          s.onRow(meta.seq, () => fromGroups ? null : messageFromStanza(stanza, {
            seq: meta.seq, stanzaId: meta.stanzaId, ts: meta.ts, conversation: sender, type: ConversationType.DIRECT, outgoing: false, from: sender,
          }), target !== null);
        }
      }
      const own = ev.senderMeta;
      if (own && hosts.has(ev.from.domain) && sender !== recipient) {
        // Carbons semantics for mobile devices: the user's other devices get what one of them sent.
        for (const s of mobileOf(sender)) {
          if (s === ev.origin) continue;
          s.onRow(own.seq, () => messageFromStanza(stanza, {
            seq: own.seq, stanzaId: own.stanzaId, ts: own.ts, conversation: recipient, type: ConversationType.DIRECT, outgoing: true, from: sender,
          }), target !== null);
        }
      }
      if (target !== null) void recordRecall(sender, recipient, target, own?.seq ?? 0, meta && hosts.has(ev.to.domain) ? meta.seq : 0);
      return false;
    });

    /** Tombstones for a retraction in both users' timelines (only messages of the retraction's sender). */
    const recordRecall = async (sender: string, recipient: string, target: string, senderEvent: number, recipientEvent: number): Promise<void> => {
      try {
        if (senderEvent > 0) {
          const row = await findByMessageId(ctx, sender, recipient, target, true);
          if (row) await ctx.conversations.recalled(sender, row.seq, senderEvent);
        }
        if (recipientEvent > 0) {
          const row = await findByMessageId(ctx, recipient, sender, target, false);
          if (row) await ctx.conversations.recalled(recipient, row.seq, recipientEvent);
        }
      } catch (err) {
        api.log.error({ err }, "recording a recall failed");
      }
    };

    // XEP-0424 from any client: only within the recall window (the sender's own copy tells its age).
    const checkRetraction = (ev: StanzaEvent): false | Promise<false | StanzaError> => {
      const target = retractTarget(ev.stanza);
      const type = ev.stanza.attrs.type;
      if (target === null || type === "groupchat" || type === "error" || !hosts.has(ev.from.domain)) return false;
      return findByMessageId(ctx, ev.from.bareString(), ev.to.bareString(), target, true).then((row) => {
        if (row && Date.now() - row.ts > opts.recallWindowSeconds * 1000) {
          return new StanzaError("not-allowed", `messages can be retracted for ${opts.recallWindowSeconds} s`);
        }
        return false;
      });
    };
    api.on("pre-message/bare", checkRetraction, "policy");
    api.on("pre-message/full", checkRetraction, "policy");

    // ---- receipts and markers from peers: read state and MarkerPush ----

    const inboundMarker = (ev: StanzaEvent): boolean => {
      const el = ev.stanza;
      const type = el.attrs.type;
      if (type === "error" || type === "groupchat" || !hosts.has(ev.to.domain)) return false;
      const displayed = el.getChild("displayed", MNS.markers);
      const marker = displayed ?? el.getChild("received", MNS.receipts) ?? el.getChild("received", MNS.markers);
      const id = marker?.attrs.id;
      if (!id) return false;
      const owner = ev.to.bareString();
      const peer = ev.from.bareString();
      if (owner === peer) return false;
      void (async () => {
        const row = await findByMessageId(ctx, owner, peer, id, true);
        const seq = row?.seq ?? 0;
        const kind = displayed ? "read" : "delivered";
        if (seq > 0) await ctx.conversations.peerMarker(owner, peer, kind, seq);
        const push = { conversation: peer, kind: displayed ? MarkerKind.DISPLAYED : MarkerKind.DELIVERED, clientMsgId: id, seq, from: ev.from.toString() };
        for (const s of mobileOf(owner)) if (!s.background) s.push("markerPush", push);
      })().catch((err) => api.log.error({ err }, "handling a marker failed"));
      return false;
    };
    api.on("message/bare", inboundMarker, "annotate");
    api.on("message/full", inboundMarker, "annotate");

    // XEP-0333 `displayed` from the user's XMPP clients moves the same read state mobile devices see.
    const ownMarker = (ev: StanzaEvent): boolean => {
      if (!ev.origin || isMobile(ev.origin)) return false;
      const id = ev.stanza.getChild("displayed", MNS.markers)?.attrs.id;
      if (!id || ev.stanza.attrs.type === "groupchat") return false;
      const owner = ev.from.bareString();
      const peer = ev.to.bareString();
      void (async () => {
        const row = await findByMessageId(ctx, owner, peer, id, false);
        if (!row) return;
        const { state, changed } = await ctx.conversations.markRead(owner, peer, row.seq);
        if (!changed) return;
        const payload = await conversationPayload(ctx, owner, peer, state);
        for (const s of mobileOf(owner)) s.push("conversation", payload);
      })().catch((err) => api.log.error({ err }, "handling an own marker failed"));
      return false;
    };
    api.on("pre-message/bare", ownMarker, "annotate");
    api.on("pre-message/full", ownMarker, "annotate");

    // ---- block lists (XEP-0191 §3.5, §3.6 semantics) ----

    /** "in": the recipient blocked the sender; "out": the (local) sender blocked the recipient. */
    const blockedWay = (ev: StanzaEvent): "in" | "out" | null | Promise<"in" | "out" | null> => {
      const to = ev.to.bareString();
      const from = ev.from.bareString();
      if (to === from || ev.from.local === "" && ev.to.local === "") return null;
      const inList = hosts.has(ev.to.domain) && ev.to.local !== "" ? ctx.blocking.cached(to) ?? ctx.blocking.get(to) : null;
      const outList = hosts.has(ev.from.domain) && ev.from.local !== "" ? ctx.blocking.cached(from) ?? ctx.blocking.get(from) : null;
      const decide = (a: ReadonlySet<string> | null, b: ReadonlySet<string> | null): "in" | "out" | null =>
        a && blocks(a, from, ev.from.domain) ? "in" : b && blocks(b, to, ev.to.domain) ? "out" : null;
      if (inList instanceof Promise || outList instanceof Promise) return Promise.all([inList, outList]).then(([a, b]) => decide(a, b));
      return decide(inList, outList);
    };
    const applyBlock = (ev: StanzaEvent, way: "in" | "out" | null): boolean | StanzaError => {
      if (way === null) return false;
      const el = ev.stanza;
      const type = el.attrs.type;
      if (el.name === "presence") return way === "out" && type === "unavailable" ? false : true;
      // Errors about the user's own stanzas (e.g. the bounce telling a blocked sender) still go out.
      if (type === "error" || (el.name === "iq" && type === "result")) return way === "in";
      return way === "in" ? new StanzaError("service-unavailable") : new StanzaError("not-acceptable", "you blocked this entity");
    };
    const blockFilter = (ev: StanzaEvent): boolean | StanzaError | Promise<boolean | StanzaError> => {
      const way = blockedWay(ev);
      return way instanceof Promise ? way.then((w) => applyBlock(ev, w)) : applyBlock(ev, way);
    };
    for (const kind of ["message", "presence", "iq"] as const) {
      for (const target of ["bare", "full"] as const) api.on(`${kind}/${target}`, blockFilter, "policy");
    }
    // Outbound from a local client: refused before it is stored or routed.
    const outboundBlock = (ev: StanzaEvent): false | StanzaError | Promise<false | StanzaError> => {
      if (!ev.origin) return false;
      const list = ctx.blocking.cached(ev.from.bareString());
      const check = (l: ReadonlySet<string>) => {
        if (!blocks(l, ev.to.bareString(), ev.to.domain) || ev.stanza.attrs.type === "error") return false;
        return new StanzaError("not-acceptable", "you blocked this entity");
      };
      return list ? check(list) : ctx.blocking.get(ev.from.bareString()).then(check);
    };
    for (const target of ["bare", "full"] as const) {
      api.on(`pre-message/${target}`, outboundBlock, "policy");
      api.on(`pre-iq/${target}`, outboundBlock, "policy");
    }

    api.observe("resource-bind", ({ session }) => { void ctx.blocking.get(session.jid!.bareString()); });
    api.observe("account-deleted", ({ host, username }) => {
      const owner = `${username}@${host}`;
      ctx.conversations.forget(owner);
      ctx.blocking.forget(owner);
    });

    // ---- the endpoint ----

    const gateway = new MobileGateway(ctx);
    await gateway.listen();
    if (opts.port === null) api.addHttpEndpoint(opts.path, (req, socket, head) => { gateway.handleUpgrade(req, socket, head); });
    let closing: Promise<void> | null = null;
    // The sessions' last acks are written before the store closes.
    const close = () => (closing ??= gateway.close().then(() => ctx.devices.idle()));
    api.observe("server-stopping", async () => { await close(); });
    api.onUnload(() => { void close(); });
    api.log.info({ port: gateway.port, path: opts.path }, "mobile endpoint listening");
  },
});
