// RFC 6120 §10: the router stamps and checks addresses, names the event once and fires it on the bus of
// the domain it concerns. Everything the server does with a stanza is a handler on those events; the RFC
// defaults sit in the fallback phase of every domain bus.
import type { Element } from "../xml/element.js";
import { tryParseJid, type Jid } from "../jid/jid.js";
import {
  PHASES, isThenable, type HookBus, type HookBuses, type HookResult, type RunName, type StanzaEvent, type StanzaKind, type Target,
} from "../events/hooks.js";
import type { Delivered, DeliveryResult, Session } from "../sessions/session.js";
import type { SessionRegistry } from "../sessions/registry.js";
import { StanzaError, errorReply, iqPayload, isAnswerable, reply, type StanzaErrorCondition } from "../xml/stanza.js";
import type { Logger } from "../log.js";
import { StanzaTraffic } from "./traffic.js";

type Result = HookResult | Promise<HookResult>;

/**
 * In a cluster, sends a stanza to the node that owns `key`: false when this node owns it (or no cluster is
 * running) and should handle the stanza itself. With `answer`, the owner's result comes back (what
 * `submit` needs); without, sending it is the result (true).
 */
export type Forwarder = (key: string, stanza: Element, answer: boolean, held: boolean) => false | HookResult | Promise<false | HookResult>;

/**
 * A held key (Router.hold, e.g. an external component's domain) is owned by the node where its holder is
 * connected, not by the first node that asks: the cluster records and drops that node.
 */
export interface Ownership {
  hold(key: string): Promise<void>;
  release(key: string): Promise<void>;
}

export class Router {
  /** Stanzas from and to local clients, by kind (the sessions count what they send). */
  readonly traffic = new StanzaTraffic();

  constructor(
    readonly hooks: HookBuses,
    readonly sessions: SessionRegistry,
    readonly hosts: ReadonlySet<string>,
    private readonly log: Logger,
  ) {
    hooks.onEveryBus((_, bus) => installDefaults(bus, this));
    // Until federation answers first: RFC 6120 §10.4.
    hooks.server.on("route/remote", () => new StanzaError("remote-server-not-found"), PHASES.fallback);
    for (const h of hosts) hooks.addDomain(h);
  }

  /** Per partitioned domain: the key whose owner node handles a stanza to `to` (null: any node). */
  private readonly partitions = new Map<string, (to: Jid) => string | null>();
  /** Partitioned domains whose keys are held (see Ownership) rather than claimed by the first node asking. */
  private readonly heldDomains = new Set<string>();
  /** The held keys this node holds now. */
  private readonly heldKeys = new Set<string>();
  private forwarder: Forwarder | null = null;
  private ownership: Ownership | null = null;
  /** Stanzas that came from the owner check of another node: handled here, never sent on again. */
  private readonly pinned = new WeakSet<Element>();
  /** Stanzas whose sender waits for the result (`submit`): a forward brings the owner's result back. */
  private readonly awaited = new WeakSet<Element>();

  /**
   * Makes every stanza to `domain` be handled on one node of a cluster per key (e.g. one MUC room lives on
   * one node): `keyOf` names the key of an address. Returns the undo.
   */
  partition(domain: string, keyOf: (to: Jid) => string | null, opts: { held?: boolean } = {}): () => void {
    this.partitions.set(domain, keyOf);
    if (opts.held) this.heldDomains.add(domain);
    return () => {
      if (this.partitions.get(domain) !== keyOf) return;
      this.partitions.delete(domain);
      this.heldDomains.delete(domain);
    };
  }

  /** The cluster's way to the owner of a key (set when the node joins a cluster). */
  setForwarder(forwarder: Forwarder | null, ownership: Ownership | null = null): void {
    this.forwarder = forwarder;
    this.ownership = ownership;
    // Keys held before the node joined (a component connected early) are recorded now.
    if (ownership) for (const key of this.heldKeys) ownership.hold(key).catch((err: unknown) => this.log.warn({ err, key }, "recording a held key failed"));
  }

  /** Records that this node holds `key` of a held partition (its component is connected here), or no longer does. */
  hold(key: string, yes: boolean): Promise<void> {
    if (yes) this.heldKeys.add(key);
    else this.heldKeys.delete(key);
    if (this.ownership === null) return Promise.resolve();
    return yes ? this.ownership.hold(key) : this.ownership.release(key);
  }

  /** A stanza another node forwarded here because this node owns its key: handled here, as from a server. */
  fromCluster(stanza: Element): Result {
    const from = tryParseJid(stanza.attrs.from);
    const to = tryParseJid(stanza.attrs.to);
    if (!from || !to) return true;
    this.pinned.add(stanza);
    return this.fromRemote(stanza, from, to);
  }

  /**
   * Hands `ev` to the node owning its key, or runs `here` (a method of this router, given the stanza's kind and
   * target) when that is this node: no closure per stanza on the way of every one.
   */
  private viaOwner(ev: StanzaEvent, kind: StanzaKind, target: Target, here: (ev: StanzaEvent, kind: StanzaKind, target: Target) => Result): Result {
    if (this.forwarder === null || this.partitions.size === 0) return here.call(this, ev, kind, target);
    const keyOf = this.partitions.get(ev.to.domain);
    const key = keyOf === undefined || this.pinned.has(ev.stanza) ? null : keyOf(ev.to);
    if (key === null) return here.call(this, ev, kind, target);
    const sent = this.forwarder(key, ev.stanza, this.awaited.has(ev.stanza), this.heldDomains.has(ev.to.domain));
    if (sent === false) return here.call(this, ev, kind, target);
    if (!isThenable(sent)) return sent;
    return sent.then((away) => (away === false ? here.call(this, ev, kind, target) : away));
  }

  /** Serves a component domain (e.g. a MUC service); returns the undo. */
  addComponent(domain: string): () => void {
    return this.hooks.addDomain(domain);
  }

  isLocalDomain(domain: string): boolean {
    return this.hooks.of(domain) !== undefined;
  }

  /**
   * A stanza from a bound local client. RFC 6120 §8.1.2.1: the server stamps `from` with the full JID
   * of the session; a `from` that is not the session's own JID is refused with an invalid-from stream error.
   */
  fromClient(session: Session, stanza: Element): Result {
    const own = session.jid!;
    const claimed = stanza.attrs.from;
    if (claimed !== undefined && claimed !== own.toString()) {
      const parsed = tryParseJid(claimed);
      if (!parsed || !(parsed.equals(own) || (parsed.isBare && parsed.equals(own.bare())))) {
        session.close("invalid-from", "the from address does not match this session");
        return true;
      }
    }
    stanza.attrs.from = own.toString();
    const kind = stanza.name as StanzaKind;
    this.traffic.received(kind);
    const type = stanza.attrs.type;
    // RFC 6120 §8.2.3: an iq has one of four types; anything else is a bad request (unless it is itself an answer).
    if (kind === "iq" && type !== "get" && type !== "set" && type !== "result" && type !== "error") {
      session.send(this.serverError(session, stanza, "bad-request", "an iq needs a type of get, set, result or error"));
      return true;
    }
    let to: Jid;
    const rawTo = stanza.attrs.to;
    if (rawTo === undefined || rawTo === "") {
      // RFC 6120 §10.3: no `to` means the user's own account.
      to = own.bare();
      if (rawTo === "") delete stanza.attrs.to;
    } else {
      const parsed = tryParseJid(rawTo);
      if (!parsed) {
        // RFC 6120 §8.3.3.8: the server answers for an address that is not a JID, never the address itself.
        if (isAnswerable(stanza)) session.send(this.serverError(session, stanza, "jid-malformed", "invalid 'to' address"));
        return true;
      }
      to = parsed;
    }
    const selfAddressed = kind !== "message" && to.isBare && to.equals(own.bare());
    const target: Target = selfAddressed ? "self" : targetOf(to);
    const ev: StanzaEvent = { stanza, from: own, to, origin: session };
    const bus = this.hooks.of(session.host)!;
    const pre = this.fire(bus, PRE_EVENTS[kind][target], ev);
    if (isThenable(pre)) return this.conclude(ev, pre.then((v) => (v ? v : this.afterPre(ev, kind, target))));
    return this.conclude(ev, pre ? pre : this.afterPre(ev, kind, target));
  }

  /**
   * Routes a message from a local client and resolves to what its delivery came to: the rows the IM rules
   * wrote, or the stanza error the sender was sent. Never rejects.
   */
  async submit(session: Session, stanza: Element): Promise<DeliveryResult> {
    this.awaited.add(stanza);
    const r = await this.fromClient(session, stanza);
    if (r instanceof StanzaError) return r;
    if (r !== null && typeof r === "object" && "duplicate" in r) return r;
    // Handled without a timeline row (not stored, or taken by a feature).
    return NOT_STORED;
  }

  /** Delivers a stanza whose addresses are already set and trusted (server-generated or checked). */
  route(stanza: Element, origin: Session | null = null): Result {
    const from = tryParseJid(stanza.attrs.from);
    const to = tryParseJid(stanza.attrs.to);
    if (!from || !to) {
      this.log.warn({ stanza: stanza.toString() }, "dropping a stanza with invalid addresses");
      return true;
    }
    return this.deliver({ stanza, from, to, origin });
  }

  /**
   * A stanza from another server whose addresses the s2s stream checked: like a local client's after its
   * pre- events, so an iq request reaches the handlers of its payload.
   */
  fromRemote(stanza: Element, from: Jid, to: Jid): Result {
    const ev: StanzaEvent = { stanza, from, to, origin: null };
    const kind = stanza.name as StanzaKind;
    return this.conclude(ev, this.afterPre(ev, kind, targetOf(to)));
  }

  deliver(ev: StanzaEvent): Result {
    return this.conclude(ev, this.viaOwner(ev, ev.stanza.name as StanzaKind, targetOf(ev.to), this.deliverTo));
  }

  /** Sends an error for `stanza` back to its sender, unless the stanza is one that is never answered. */
  bounce(stanza: Element, condition: StanzaErrorCondition, text?: string): void {
    if (!isAnswerable(stanza)) return;
    void this.route(errorReply(stanza, condition, text));
  }

  /** The result of an iq request (RFC 6120 §8.2.3), to the session it came from when that is still open. */
  answer(ev: StanzaEvent, child: Element | null): void {
    this.replyTo(ev, reply(ev.stanza, child));
  }

  /**
   * The error answer to a stanza (RFC 6120 §8.3), to the session it came from when that is still open;
   * nothing for a stanza that is never answered (an error, an iq result, presence other than probe).
   */
  fail(ev: StanzaEvent, err: StanzaError): void {
    if (!isAnswerable(ev.stanza)) return;
    this.replyTo(ev, errorReply(ev.stanza, err.condition, err.text, err.type, err.app));
  }

  private replyTo(ev: StanzaEvent, answer: Element): void {
    // An answer to a stanza sent without `to` carries no `from`: it comes from the user's own account (§10.3.3).
    const s = ev.origin;
    if (s && !s.closed) s.send(answer);
    else if (answer.attrs.to !== undefined && answer.attrs.from !== undefined) void this.route(answer);
  }

  /** An error the server itself answers for `stanza` from a local session (from the session's host). */
  private serverError(session: Session, stanza: Element, condition: StanzaErrorCondition, text: string): Element {
    const err = errorReply(stanza, condition, text);
    err.attrs.from = session.host;
    err.attrs.to = session.jid!.toString();
    return err;
  }

  private afterPre(ev: StanzaEvent, kind: StanzaKind, target: Target): Result {
    return this.viaOwner(ev, kind, target, this.handleHere);
  }

  private handleHere(ev: StanzaEvent, kind: StanzaKind, target: Target): Result {
    const type = ev.stanza.attrs.type;
    const bus = this.hooks.of(ev.to.domain);
    // Payload handlers answer for domains served here; a remote domain goes to federation as is.
    if (bus && kind === "iq" && (type === "get" || type === "set")) {
      const payload = iqPayload(ev.stanza);
      if (!payload || ev.stanza.children.some((c) => typeof c !== "string" && c !== payload)) {
        this.fail(ev, new StanzaError("bad-request", "an iq request needs exactly one payload"));
        return true;
      }
      const r = this.fire(bus, `iq-${type}/${target}/${payload.getNS() ?? ""}:${payload.getName()}` as RunName, ev);
      if (isThenable(r)) return r.then((v) => (v ? v : this.deliverTo(ev, kind, target)));
      if (r) return r;
    }
    return this.deliverTo(ev, kind, target);
  }

  private deliverTo(ev: StanzaEvent, kind: StanzaKind, target: Target): Result {
    const bus = this.hooks.of(ev.to.domain);
    if (!bus) return this.fire(this.hooks.server, "route/remote", ev);
    return this.fire(bus, EVENTS[kind][target], ev);
  }

  private fire(bus: HookBus, name: RunName, ev: StanzaEvent): Result {
    try {
      return bus.run(name, ev);
    } catch (err) {
      return this.handlerFailed(name, ev, err);
    }
  }

  /**
   * What the handlers' answer comes to: a StanzaError refused the stanza, and the sender gets it; a handler
   * that threw or rejected is an internal-server-error. One reaction per awaited answer: a message waiting
   * for its commit keeps it alive.
   */
  private conclude(ev: StanzaEvent, r: Result): Result {
    if (isThenable(r)) {
      return r.then((v) => this.conclude(ev, v) as HookResult, (err) => this.conclude(ev, this.handlerFailed(ev.stanza.name, ev, err)) as HookResult);
    }
    if (r instanceof StanzaError) this.fail(ev, r);
    return r;
  }

  /**
   * The answer to a handler that threw or rejected: logged, and an internal-server-error for the sender. Also for
   * a handler that took its message over from the session and answers it itself (the IM rules' TurnDelivery).
   */
  handlerFailed(name: string, ev: StanzaEvent, err: unknown): StanzaError {
    this.log.error({ err, event: name, stanza: ev.stanza.toString() }, "handler failed");
    return new StanzaError("internal-server-error");
  }
}

const NOT_STORED: Delivered = Object.freeze({ sender: null, recipient: null, duplicate: false });

/** RFC defaults in the fallback phase of a domain bus: modules override them by answering first. */
function installDefaults(bus: HookBus, router: Router): void {
  const fallback = PHASES.fallback;
  const toSessionOr = (otherwise: () => StanzaError) => (ev: StanzaEvent) => {
    const s = router.sessions.get(ev.to);
    if (!s) return otherwise();
    s.send(ev.stanza);
    return true;
  };
  // RFC 6120 §8.2.3 / §10.5.3.1: every iq get/set is answered; results and errors never are (Router.fail).
  const unavailable = () => new StanzaError("service-unavailable");
  bus.on("iq/full", toSessionOr(unavailable), fallback);
  for (const t of ["bare", "host", "self"] as const) bus.on(`iq/${t}`, unavailable, fallback);
  bus.on("message/full", toSessionOr(unavailable), fallback);
  for (const t of ["bare", "host", "self"] as const) bus.on(`message/${t}`, unavailable, fallback);
  for (const t of ["full", "bare", "host", "self"] as const) bus.on(`presence/${t}`, () => true, fallback);
}

/**
 * The run event of each stanza kind and target, written out: a name built per stanza was a rope that the
 * bus's map lookup flattened, hashed and compared again for every stanza (literals are interned once).
 */
const EVENTS = {
  message: { full: "message/full", bare: "message/bare", host: "message/host", self: "message/self" },
  presence: { full: "presence/full", bare: "presence/bare", host: "presence/host", self: "presence/self" },
  iq: { full: "iq/full", bare: "iq/bare", host: "iq/host", self: "iq/self" },
} as const satisfies { [K in StanzaKind]: { [T in Target]: `${K}/${T}` } };
const PRE_EVENTS = {
  message: { full: "pre-message/full", bare: "pre-message/bare", host: "pre-message/host", self: "pre-message/self" },
  presence: { full: "pre-presence/full", bare: "pre-presence/bare", host: "pre-presence/host", self: "pre-presence/self" },
  iq: { full: "pre-iq/full", bare: "pre-iq/bare", host: "pre-iq/host", self: "pre-iq/self" },
} as const satisfies { [K in StanzaKind]: { [T in Target]: `pre-${K}/${T}` } };

export function targetOf(to: Jid): Target {
  if (to.resource) return to.local ? "full" : "host";
  return to.local ? "bare" : "host";
}
