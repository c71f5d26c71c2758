// Answering iq requests with a stanza error. `api.onIq` can only answer with a result (or let the core
// answer `service-unavailable`); these modules also need `forbidden`, `item-not-found`, `conflict`…
// A handler registered here throws `IqError` for those, and only sees requests addressed to a domain
// this server hosts: the router names `iq-*/host/…` and `iq-*/bare/…` for remote and component domains
// too, which belong to federation or to the component's own module.
import type { ModuleApi } from "../../src/modules/module.js";
import type { StanzaEvent, Target } from "../../src/events/hooks.js";
import type { Element } from "../../src/xml/element.js";
import { errorReply, reply, type ErrorType, type StanzaErrorCondition } from "../../src/xml/stanza.js";

export class IqError extends Error {
  constructor(readonly condition: StanzaErrorCondition, readonly text?: string, readonly type?: ErrorType) {
    super(text ?? condition);
  }
}

/** True when the request is addressed to one of the served hosts (or a user on one). */
export function isServedDomain(api: ModuleApi<any>, ev: StanzaEvent): boolean {
  return api.hosts.includes(ev.to.domain);
}

/** Sends a reply to the requester: straight to its session when it is still open, otherwise routed. */
export function sendReply(api: ModuleApi<any>, ev: StanzaEvent, stanza: Element): void {
  const s = ev.origin;
  if (s && !s.closed) s.send(stanza);
  else api.send(stanza);
}

/** Returned by a handler that has sent its reply itself (e.g. a result that must precede closing the stream). */
export const REPLIED = Symbol("replied");

/**
 * What a handler answers: the result child, `true` for an empty result, `REPLIED` when it sent the
 * reply itself, or nothing (`false`, undefined) to let the next handler answer.
 */
type Answer = Element | boolean | typeof REPLIED | void | undefined;
export type IqHandler = (ev: StanzaEvent) => Answer | Promise<Answer>;

function isThenable(v: unknown): v is Promise<unknown> {
  return v !== null && typeof v === "object" && typeof (v as { then?: unknown }).then === "function";
}

/**
 * Like `api.onIq`, plus: a thrown `IqError` becomes that stanza error (RFC 6120 §8.3), and requests to
 * domains not served here are left to the next handler. Other throws reach the router, which answers
 * `internal-server-error` and logs them.
 */
export function handleIq(
  api: ModuleApi<any>, type: "get" | "set", targets: Target | Target[], ns: string, name: string,
  handler: IqHandler, priority?: number,
): void {
  const answer = (ev: StanzaEvent, v: Answer): boolean => {
    if (!v) return false;
    if (v === REPLIED) return true;
    sendReply(api, ev, reply(ev.stanza, v === true ? null : v));
    return true;
  };
  const fail = (ev: StanzaEvent, err: unknown): boolean => {
    if (!(err instanceof IqError)) throw err;
    sendReply(api, ev, errorReply(ev.stanza, err.condition, err.text, err.type));
    return true;
  };
  for (const target of Array.isArray(targets) ? targets : [targets]) {
    const event = `iq-${type}/${target}/${ns}:${name}` as const;
    api.on(event, (ev) => {
      if (target !== "self" && !isServedDomain(api, ev)) return false;
      let r: ReturnType<IqHandler>;
      try {
        r = handler(ev);
      } catch (err) {
        return fail(ev, err);
      }
      if (isThenable(r)) return r.then((v) => answer(ev, v), (err) => fail(ev, err));
      return answer(ev, r);
    }, priority);
  }
}
