// RFC 6120 §10: the router stamps and checks addresses, names the event once and fires it. Everything
// the server does with a stanza is a handler on those events; the RFC defaults sit at the lowest priority.
import type { Element } from "../xml/element.js";
import { tryParseJid, type Jid } from "../jid/jid.js";
import type { HookBus, StanzaEvent, StanzaKind, Target, HookName, HookResult } from "../events/hooks.js";
import type { Session } from "../sessions/session.js";
import type { SessionRegistry } from "../sessions/registry.js";
import { errorReply, iqPayload, isErrorStanza, type StanzaErrorCondition } from "../xml/stanza.js";
import type { Logger } from "../log.js";

export const LOWEST_PRIORITY = -1000;

function isThenable(v: unknown): v is Promise<unknown> {
  return v !== null && typeof v === "object" && typeof (v as { then?: unknown }).then === "function";
}

export class Router {
  /** Domains served here: the hosts plus components (e.g. a MUC service) registered by modules. */
  private readonly localDomains = new Set<string>();

  constructor(
    readonly hooks: HookBus,
    readonly sessions: SessionRegistry,
    readonly hosts: ReadonlySet<string>,
    private readonly log: Logger,
  ) {
    for (const h of hosts) this.localDomains.add(h);
    this.installDefaults();
  }

  addComponent(domain: string): () => void {
    this.localDomains.add(domain);
    return () => this.localDomains.delete(domain);
  }

  isLocalDomain(domain: string): boolean {
    return this.localDomains.has(domain);
  }

  /**
   * A stanza from a bound local client. RFC 6120 §8.1.2.1: the server stamps `from` with the full JID
   * of the session; a `from` that is not the session's own JID is refused with an invalid-from stream error.
   */
  fromClient(session: Session, stanza: Element): HookResult | Promise<HookResult> {
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
    let to: Jid;
    const rawTo = stanza.attrs.to;
    if (rawTo === undefined || rawTo === "") {
      // RFC 6120 §10.3: no `to` means the user's own account.
      to = own.bare();
      if (rawTo === "") delete stanza.attrs.to;
    } else {
      const parsed = tryParseJid(rawTo);
      if (!parsed) {
        if (!isErrorStanza(stanza)) session.send(errorReply(stanza, "jid-malformed", "invalid 'to' address"));
        return true;
      }
      to = parsed;
    }
    const selfAddressed = kind !== "message" && to.isBare && to.equals(own.bare());
    const target: Target = selfAddressed ? "self" : targetOf(to);
    const ev: StanzaEvent = { stanza, from: own, to, origin: session };
    return this.chain(ev, kind, target, `pre-${kind}/${target}` as HookName);
  }

  /** Delivers a stanza whose addresses are already set and trusted (server-generated or checked). */
  route(stanza: Element, origin: Session | null = null): HookResult | Promise<HookResult> {
    const from = tryParseJid(stanza.attrs.from);
    const to = tryParseJid(stanza.attrs.to);
    if (!from || !to) {
      this.log.warn({ stanza: stanza.toString() }, "dropping a stanza with invalid addresses");
      return true;
    }
    return this.deliver({ stanza, from, to, origin });
  }

  deliver(ev: StanzaEvent): HookResult | Promise<HookResult> {
    const kind = ev.stanza.name as StanzaKind;
    return this.guard(ev, this.fire(`${kind}/${targetOf(ev.to)}` as HookName, ev));
  }

  /** Sends an error for `stanza` back to its sender, unless it is an error itself. */
  bounce(stanza: Element, condition: StanzaErrorCondition, text?: string): void {
    if (isErrorStanza(stanza)) return;
    if (stanza.name === "presence" && stanza.attrs.type !== undefined && stanza.attrs.type !== "probe") return;
    void this.route(errorReply(stanza, condition, text));
  }

  private chain(ev: StanzaEvent, kind: StanzaKind, target: Target, preEvent: HookName): HookResult | Promise<HookResult> {
    const next = (): HookResult | Promise<HookResult> => {
      const type = ev.stanza.attrs.type;
      // Payload handlers answer for domains served here; a remote domain goes to federation as is.
      if (kind === "iq" && (type === "get" || type === "set") && this.localDomains.has(ev.to.domain)) {
        const payload = iqPayload(ev.stanza);
        if (!payload) {
          this.bounce(ev.stanza, "bad-request", "an iq request needs exactly one payload");
          return true;
        }
        const name = `iq-${type}/${target}/${payload.getNS() ?? ""}:${payload.getName()}` as HookName;
        const r = this.fire(name, ev);
        if (isThenable(r)) return r.then((v) => (v ? v : this.deliverLocal(ev, kind)));
        if (r) return r;
      }
      return this.deliverLocal(ev, kind);
    };
    const pre = this.fire(preEvent, ev);
    if (isThenable(pre)) return this.guard(ev, pre.then((v) => (v ? v : next())));
    if (pre) return pre;
    return this.guard(ev, next());
  }

  private deliverLocal(ev: StanzaEvent, kind: StanzaKind): HookResult | Promise<HookResult> {
    if (!this.localDomains.has(ev.to.domain)) {
      return this.fire("route/remote", ev);
    }
    return this.fire(`${kind}/${targetOf(ev.to)}` as HookName, ev);
  }

  private fire(name: HookName, ev: StanzaEvent): HookResult | Promise<HookResult> {
    try {
      return this.hooks.fire(name, ev);
    } catch (err) {
      this.handlerFailed(name, ev, err);
      return true;
    }
  }

  private guard(ev: StanzaEvent, r: HookResult | Promise<HookResult>): HookResult | Promise<HookResult> {
    if (!isThenable(r)) return r;
    return r.catch((err) => {
      this.handlerFailed(ev.stanza.name, ev, err);
      return true;
    });
  }

  private handlerFailed(name: string, ev: StanzaEvent, err: unknown): void {
    this.log.error({ err, event: name, stanza: ev.stanza.toString() }, "handler failed");
    const type = ev.stanza.attrs.type;
    if (ev.stanza.name === "iq" && (type === "get" || type === "set")) this.bounce(ev.stanza, "internal-server-error");
  }

  /** RFC defaults at the lowest priority: modules override them by answering first. */
  private installDefaults(): void {
    const h = this.hooks;
    h.on("route/remote", (ev) => {
      // Federation is not wired in yet: RFC 6120 §10.4.
      this.bounce(ev.stanza, "remote-server-not-found");
      return true;
    }, LOWEST_PRIORITY);
    const toSessionOr = (fallback: (ev: StanzaEvent) => void) => (ev: StanzaEvent) => {
      const s = this.sessions.get(ev.to);
      if (s) s.send(ev.stanza);
      else fallback(ev);
      return true;
    };
    const unavailable = (ev: StanzaEvent) => {
      const type = ev.stanza.attrs.type;
      if (ev.stanza.name === "iq" && type !== "get" && type !== "set") return true; // results/errors: dropped
      this.bounce(ev.stanza, "service-unavailable");
      return true;
    };
    h.on("iq/full", toSessionOr(unavailable), LOWEST_PRIORITY);
    for (const t of ["bare", "host", "self"] as const) h.on(`iq/${t}`, unavailable, LOWEST_PRIORITY);
    h.on("message/full", toSessionOr(unavailable), LOWEST_PRIORITY);
    h.on("message/bare", unavailable, LOWEST_PRIORITY);
    h.on("message/host", unavailable, LOWEST_PRIORITY);
    h.on("message/self", unavailable, LOWEST_PRIORITY);
    for (const t of ["full", "bare", "host", "self"] as const) h.on(`presence/${t}`, () => true, LOWEST_PRIORITY);
  }
}

export function targetOf(to: Jid): Target {
  if (to.resource) return to.local ? "full" : "host";
  return to.local ? "bare" : "host";
}
