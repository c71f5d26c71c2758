// RFC 6121 §8.5 message delivery rules on top of the timeline (DESIGN.md): every 1:1 message with
// content is written once to the sender's and once to the recipient's timeline, in one transaction,
// before it is delivered. Offline storage (XEP-0160) is the recipient's pending part of that timeline.
import { defineModule } from "../modules/module.js";
import { textWithLastChild, withText, xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { isThenable, type HookResult, type StanzaEvent } from "../events/hooks.js";
import type { Delivered, DeliveryMeta, MessageTurn, Session } from "../sessions/session.js";
import { StanzaError } from "../xml/stanza.js";
import type { AppendResult, AppendSink, NewTimelineEntry } from "../storage/types.js";
import { parseFramedElement } from "../xml/parser.js";
import { storable } from "./archived.js";


/** The sessions a message to another server goes to from here: none (it leaves through federation). */
const NO_TARGETS: Session[] = [];

export const messageModule = defineModule({
  name: "message",
  xep: [
    { spec: "RFC 6121", title: "XMPP Instant Messaging and Presence", status: "complete", note: "message delivery rules (§8.5)" },
    { spec: "XEP-0160", title: "Best Practices for Handling Offline Messages", version: "1.0.1", status: "complete" },
    { spec: "XEP-0203", title: "Delayed Delivery", version: "2.0", status: "complete" },
    { spec: "XEP-0359", title: "Unique and Stable Stanza IDs", version: "0.7.0", status: "complete" },
    { spec: "XEP-0334", title: "Message Processing Hints", version: "0.3.0", status: "partial", note: "no-store, no-permanent-store, store" },
  ],
  setup(api) {
    const { store, sessions } = api;
    const hosts = new Set(api.hosts);
    const maxOffline = api.config.offline.maxPerUser;
    // The sender's session may go on with its next messages once a message's rows are queued, when the
    // store keeps the order of the appends (Session.takeTurn).
    const inOrder = store.timeline.appendsInOrder === true;
    api.addFeature("msgoffline");
    api.addFeature(NS.sid, "account");

    /** Resources that receive a message to the bare JID: the highest non-negative priority (§8.5.2.1.1). */
    const targetsOf = (bare: string, type: string | undefined): Session[] => {
      const bound = sessions.resources(bare);
      // The usual one resource: its array as it is (the array waits with the message for its commit).
      if (bound.length === 1) return bound[0].presence !== null && bound[0].priority >= 0 ? bound : [];
      const all = bound.filter((s) => s.presence !== null && s.priority >= 0);
      if (type === "headline") return all;
      let best = -1;
      for (const s of all) if (s.priority > best) best = s.priority;
      return all.filter((s) => s.priority === best);
    };

    // XEP-0359 §3.3: a stanza-id claiming to come from us was forged by the sender; drop it.
    api.on("pre-message/bare", (ev) => { stripForgedIds(ev.stanza, ev.to.bareString()); return false; }, "annotate");
    api.on("pre-message/full", (ev) => { stripForgedIds(ev.stanza, ev.to.bareString()); return false; }, "annotate");

    /** §8.5.2: a message to a local bare JID. Answers what its delivery came to (the delivery result). */
    const deliverToBareJid = (ev: StanzaEvent): HookResult | Promise<HookResult> => {
      const type = ev.stanza.attrs.type ?? "normal";
      if (type === "error") {
        for (const s of targetsOf(ev.to.bareString(), type)) s.send(ev.stanza);
        return true;
      }
      const exists = api.accounts.exists(ev.to.domain, ev.to.local);
      return isThenable(exists) ? exists.then((yes) => deliverToAccount(ev, type, yes)) : deliverToAccount(ev, type, exists);
    };

    const deliverToAccount = (ev: StanzaEvent, type: string, exists: boolean): HookResult | Promise<HookResult> => {
      const stanza = ev.stanza;
      // §8.5.1: no such user.
      if (!exists) return type === "headline" ? true : new StanzaError("service-unavailable");
      if (type === "groupchat") return new StanzaError("service-unavailable");
      const recipient = ev.to.bareString();
      const targets = targetsOf(recipient, type);
      if (type === "headline") {
        for (const s of targets) s.send(stanza);
        return true;
      }
      if (!storable(stanza)) {
        for (const s of targets) s.send(stanza);
        return delivered(ev, targets, null);
      }
      if (targets.length !== 0) return archive(ev, recipient, false, targets);
      return store.timeline.countPending(recipient).then((count): HookResult | Promise<HookResult> => count >= maxOffline
        ? new StanzaError("service-unavailable", "the recipient's offline storage is full")
        : archive(ev, recipient, true, targets));
    };

    interface Archived { sender: DeliveryMeta | null; recipient: DeliveryMeta; duplicate: boolean; xml: string }
    const metaOf = (r: { seq: number; stanzaId: string; ts: number }): DeliveryMeta => ({ seq: r.seq, stanzaId: r.stanzaId, ts: r.ts });

    /**
     * Writes the sender's and the recipient's rows in one transaction (DESIGN.md write fan-out), then delivers
     * to `targets`. A message waits for its commit here, thousands at a time under load: as one object
     * (TurnDelivery) when its session hands it over, no async frames, no closure of its own.
     */
    const archive = (ev: StanzaEvent, recipient: string, pending: boolean, targets: Session[]): true | Promise<Delivered | true> => {
      const stanza = ev.stanza;
      const sender = ev.from.bareString();
      const originId = stanza.getChild("origin-id", NS.sid)?.attrs.id ?? null;
      const ts = Date.now();
      const xmlText = stanza.toString();
      const senderLocal = hosts.has(ev.from.domain) && ev.from.local !== "" && sender !== recipient;
      // Array literals: of their exact size, where a push into [] leaves room for 17 (the array waits for the
      // commit). `archived` and `searchText` (which MAM sets) are there from the start, so setting them adds
      // no property store to each row.
      const incoming: NewTimelineEntry = { owner: recipient, peer: sender, outgoing: false, originId, ts, xml: xmlText, pending, archived: true, searchText: null };
      const entries: NewTimelineEntry[] = senderLocal
        ? [{ owner: sender, peer: recipient, outgoing: true, originId, ts, xml: xmlText, pending: false, archived: true, searchText: null }, incoming]
        : [incoming];
      return writeRows(ev.to.domain, ev, entries, targets, deliverCommitted);
    };

    /**
     * What a message's committed rows come to: the same function for every message, given what it needs, where
     * a closure per message kept its own copy of them while it waited.
     */
    type Committed<T> = (ev: StanzaEvent, rows: AppendResult[], entries: NewTimelineEntry[], targets: Session[]) => T | Promise<T>;
    const deliverCommitted: Committed<Delivered> = (ev, rows, entries, targets) => {
      // archive(): the sender's row first when there is one; the recipient's text is what was archived.
      const senderRow = entries.length === 2 ? rows[0] : null;
      return deliverArchived(ev, targets, {
        sender: senderRow === null ? null : metaOf(senderRow), recipient: metaOf(rows[rows.length - 1]),
        duplicate: senderRow !== null && senderRow.duplicate, xml: entries[entries.length - 1].xml,
      });
    };

    /**
     * Lets the observers of `message-archiving` (on `domain`'s bus) adjust the rows, appends them, and runs
     * `then` once they are committed. When the sender's session hands the message over (Session.takeTurn),
     * `then` runs once its earlier messages are done too (deliveries keep the order the client sent in), and
     * the answer is `true` at once: the message ends its turn itself (TurnDelivery).
     */
    const writeRows = <T extends HookResult>(domain: string, ev: StanzaEvent, entries: NewTimelineEntry[], targets: Session[], then: Committed<T>): true | Promise<T | true> => {
      const noted = api.notify(domain, "message-archiving", { stanza: ev.stanza, from: ev.from, to: ev.to, entries });
      if (isThenable(noted)) return noted.then((): T | true | Promise<T> => appendInOrder(ev, entries, targets, then));
      return appendInOrder(ev, entries, targets, then);
    };
    const appendInOrder = <T extends HookResult>(ev: StanzaEvent, entries: NewTimelineEntry[], targets: Session[], then: Committed<T>): true | Promise<T> => {
      const turn = inOrder ? ev.origin?.takeTurn?.(ev.stanza) : undefined;
      if (turn === undefined) return store.timeline.append(entries).then((rows) => then(ev, rows, entries, targets));
      store.timeline.appendTo(entries, new TurnDelivery(ev, turn, entries, targets, then));
      return true;
    };

    /**
     * A message its sender's session handed over, from its append to its end: the commit's answer, the wait
     * for the session's earlier messages, the delivery (`then`), an error answer for a refusal or a failure,
     * and the end of the turn. One object for what a promise chain kept as a promise, a reaction and closures
     * per step and per layer above (hooks, router, session), thousands at a time while they wait for a commit.
     */
    class TurnDelivery implements AppendSink {
      private rows: AppendResult[] | null = null;
      private error: unknown = null;

      constructor(
        private readonly ev: StanzaEvent,
        private readonly turn: MessageTurn,
        private readonly entries: NewTimelineEntry[],
        private readonly targets: Session[],
        private readonly then: Committed<HookResult>,
      ) {}

      committed(rows: AppendResult[]): void {
        this.rows = rows;
        this.turn.afterEarlier(this);
      }

      failed(err: unknown): void {
        this.error = err;
        this.turn.afterEarlier(this);
      }

      run(): void {
        let r: HookResult | Promise<HookResult>;
        try {
          if (this.rows === null) throw this.error;
          r = this.then(this.ev, this.rows, this.entries, this.targets);
        } catch (err) {
          return this.done(api.router.handlerFailed("message", this.ev, err));
        }
        if (isThenable(r)) r.then((v) => this.done(v), (err: unknown) => this.done(api.router.handlerFailed("message", this.ev, err)));
        else this.done(r);
      }

      /** As the router concludes any handler's answer (Router.conclude), then the end of the turn. */
      private done(r: HookResult): void {
        if (r instanceof StanzaError) api.router.fail(this.ev, r);
        this.turn.end();
      }
    }

    const deliverArchived = (ev: StanzaEvent, targets: Session[], rows: Archived): Delivered | Promise<Delivered> => {
      // A resend of a stored message (same origin-id): answered from the first write, delivered once.
      if (rows.duplicate) return delivered(ev, [], null, rows.sender, true);
      const meta = rows.recipient;
      const stanzaId = xml("stanza-id", { xmlns: NS.sid, id: meta.stanzaId, by: ev.to.bareString() });
      ev.stanza.cnode(stanzaId);
      const send = (): Delivered => {
        // The text archived plus the stanza-id is what goes out: the stanza is not serialised again per resource.
        const text = targets.length === 0 ? null : textWithLastChild(ev.stanza, rows.xml, stanzaId);
        if (text === null) for (const s of targets) s.send(ev.stanza, meta);
        else withText(ev.stanza, text, () => { for (const s of targets) s.send(ev.stanza, meta); });
        return delivered(ev, targets, meta, rows.sender);
      };
      // Observers return a promise only for the messages they record something for (retractions).
      const archived = api.notify(ev.to.domain, "message-archived", { stanza: ev.stanza, from: ev.from, to: ev.to, meta, senderMeta: rows.sender });
      return archived ? archived.then(send) : send();
    };

    const delivered = (ev: StanzaEvent, targets: Session[], meta: DeliveryMeta | null, senderMeta: DeliveryMeta | null = null, duplicate = false): Delivered => {
      void api.notify(ev.to.domain, "message-delivered", { stanza: ev.stanza, from: ev.from, to: ev.to, origin: ev.origin, delivered: targets, meta, senderMeta, duplicate });
      // A message to one's own bare JID has one row, the recipient's, which is the sender's too.
      const toSelf = ev.from.bareString() === ev.to.bareString();
      return { sender: senderMeta ?? (toSelf ? meta : null), recipient: meta, duplicate };
    };

    /**
     * A message to a user of another server: the sender's row is written (MAM, mobile sync) before it
     * leaves through federation (route/remote), and a resend of a stored origin-id does not leave again.
     */
    const sendToRemote = (ev: StanzaEvent): boolean | Promise<Delivered | StanzaError | true> => {
      const type = ev.stanza.attrs.type ?? "normal";
      // Checked before any await: every local message passes here and must not pay for a promise.
      if (api.router.isLocalDomain(ev.to.domain) || type === "groupchat" || type === "error" || type === "headline" || !storable(ev.stanza)) return false;
      return archiveAndSendRemote(ev);
    };
    const archiveAndSendRemote = (ev: StanzaEvent): true | Promise<Delivered | StanzaError | true> => {
      const sender = ev.from.bareString();
      const originId = ev.stanza.getChild("origin-id", NS.sid)?.attrs.id ?? null;
      const entries: NewTimelineEntry[] = [{
        owner: sender, peer: ev.to.bareString(), outgoing: true, originId, ts: Date.now(), xml: ev.stanza.toString(), pending: false,
      }];
      return writeRows(ev.from.domain, ev, entries, NO_TARGETS, sendCommitted);
    };
    const sendCommitted: Committed<Delivered | StanzaError> = (ev, [row]) => {
      if (row.duplicate) return { sender: metaOf(row), recipient: null, duplicate: true };
      return Promise.resolve(api.run(ev.to.domain, "route/remote", ev)).then((routed) =>
        routed instanceof StanzaError ? routed : { sender: metaOf(row), recipient: null, duplicate: false });
    };
    api.on("pre-message/bare", sendToRemote);
    api.on("pre-message/full", sendToRemote);

    api.on("message/bare", deliverToBareJid);
    api.on("message/full", (ev) => {
      const s = sessions.get(ev.to);
      const type = ev.stanza.attrs.type ?? "normal";
      if (s) {
        if (type === "groupchat" || type === "error" || type === "headline") { s.send(ev.stanza); return true; }
        if (!storable(ev.stanza)) { s.send(ev.stanza); return delivered(ev, [s], null); }
        return archive(ev, ev.to.bareString(), false, [s]);
      }
      // §8.5.3.2: no such resource.
      if (type === "error" || type === "headline") return true;
      if (type === "groupchat") return new StanzaError("service-unavailable");
      return deliverToBareJid({ ...ev, to: ev.to.bare() });
    });

    /** XEP-0160 §3: the pending (offline) messages of the session's user, in order, with their delay. */
    const deliverPending = async (session: Session): Promise<void> => {
      const owner = session.jid!.bareString();
      for (;;) {
        const batch = await store.timeline.pending(owner, 200);
        // A session that ended meanwhile gets nothing more: what it did not get stays pending.
        if (batch.length === 0 || session.closed) break;
        for (const entry of batch) {
          let el: Element;
          try { el = parseFramedElement(entry.xml); } catch (err) {
            // A row written before the parser enforced namespace well-formedness would break the client's stream.
            api.log.warn({ err, owner, seq: entry.seq }, "offline delivery: skipped a stored stanza that does not parse");
            continue;
          }
          el.cnode(xml("stanza-id", { xmlns: NS.sid, id: entry.stanzaId, by: owner }));
          el.cnode(xml("delay", { xmlns: NS.delay, from: session.host, stamp: new Date(entry.ts).toISOString() }, "Offline Storage"));
          session.send(el, { seq: entry.seq, stanzaId: entry.stanzaId, ts: entry.ts });
        }
        await store.timeline.markDelivered(owner, batch.map((e) => e.seq));
        if (batch.length < 200) break;
      }
    };

    // XEP-0160 §3: offline messages go out when a resource with non-negative priority becomes available.
    api.observe("initial-presence", async ({ session }) => {
      if (session.priority >= 0) await deliverPending(session);
    });

    // Messages stranded on a cluster node that died belong to a resource that is online now (e.g. the
    // same client, reconnected to another node), not to the next login: the best available one takes them.
    api.observe("messages-requeued", async ({ owner }) => {
      const best = sessions.resources(owner)
        .filter((s) => s.presence !== null && s.priority >= 0 && !s.closed)
        .sort((a, b) => b.priority - a.priority)[0];
      if (best) await deliverPending(best);
    });
  },
});

function stripForgedIds(stanza: Element, recipient: string): void {
  const forged = (c: Element | string): boolean => typeof c !== "string" && c.name === "stanza-id" && c.attrs.xmlns === NS.sid && c.attrs.by === recipient;
  // Looked for first: this runs for every message, and almost none carries one.
  if (stanza.children.some(forged)) stanza.children = stanza.children.filter((c) => !forged(c));
}
