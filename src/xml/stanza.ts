// Replies and errors are built here and only here (STYLE 7): never hand-built envelopes.
import { Element, clone, xml } from "./element.js";
import { NS } from "./ns.js";

export type ErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";
export type StanzaErrorCondition =
  | "bad-request" | "conflict" | "feature-not-implemented" | "forbidden" | "gone" | "internal-server-error"
  | "item-not-found" | "jid-malformed" | "not-acceptable" | "not-allowed" | "not-authorized" | "policy-violation"
  | "recipient-unavailable" | "redirect" | "registration-required" | "remote-server-not-found"
  | "remote-server-timeout" | "resource-constraint" | "service-unavailable" | "subscription-required"
  | "undefined-condition" | "unexpected-request";

export type StreamErrorCondition =
  | "bad-format" | "bad-namespace-prefix" | "conflict" | "connection-timeout" | "host-gone" | "host-unknown"
  | "improper-addressing" | "internal-server-error" | "invalid-from" | "invalid-namespace" | "invalid-xml"
  | "not-authorized" | "not-well-formed" | "policy-violation" | "remote-connection-failed" | "reset"
  | "resource-constraint" | "restricted-xml" | "see-other-host" | "system-shutdown" | "undefined-condition"
  | "unsupported-encoding" | "unsupported-feature" | "unsupported-stanza-type" | "unsupported-version";

/** Default error type of each condition (RFC 6120 §8.3.3). */
const defaultType: Record<StanzaErrorCondition, ErrorType> = {
  "bad-request": "modify", conflict: "cancel", "feature-not-implemented": "cancel", forbidden: "auth",
  gone: "cancel", "internal-server-error": "cancel", "item-not-found": "cancel", "jid-malformed": "modify",
  "not-acceptable": "modify", "not-allowed": "cancel", "not-authorized": "auth", "policy-violation": "modify",
  "recipient-unavailable": "wait", redirect: "modify", "registration-required": "auth",
  "remote-server-not-found": "cancel", "remote-server-timeout": "wait", "resource-constraint": "wait",
  "service-unavailable": "cancel", "subscription-required": "auth", "undefined-condition": "cancel",
  "unexpected-request": "wait",
};

function swapAddresses(stanza: Element, type: string): Element {
  return xml(stanza.name, { xmlns: stanza.attrs.xmlns, from: stanza.attrs.to, to: stanza.attrs.from, id: stanza.attrs.id, type });
}

/** An iq result for `request`, with an optional payload child. */
export function reply(request: Element, child?: Element | null): Element {
  const el = swapAddresses(request, "result");
  if (child) el.cnode(child);
  return el;
}

export function errorElement(condition: StanzaErrorCondition, text?: string, type?: ErrorType, by?: string): Element {
  return xml("error", { type: type ?? defaultType[condition], by },
    xml(condition, { xmlns: NS.stanzas }),
    text ? xml("text", { xmlns: NS.stanzas, "xml:lang": "en" }, text) : null);
}

/**
 * The error reply to `stanza` (RFC 6120 §8.3). Message and presence errors carry the original payload
 * back, so a client can tell which message failed; an iq error does not need it.
 */
export function errorReply(stanza: Element, condition: StanzaErrorCondition, text?: string, type?: ErrorType, app?: Element): Element {
  const el = swapAddresses(stanza, "error");
  if (stanza.name !== "iq") for (const c of stanza.children) if (typeof c !== "string" && c.name !== "error") el.cnode(clone(c));
  const error = errorElement(condition, text, type);
  if (app) error.cnode(clone(app));
  el.cnode(error);
  return el;
}

/**
 * A stanza error to answer with (RFC 6120 §8.3): thrown by iq handlers, turned into the error reply by
 * the core, which answers every request exactly once.
 */
export class StanzaError extends Error {
  /** `app`: an application-specific condition element (RFC 6120 §8.3.2), e.g. XEP-0191's <blocked/>. */
  constructor(readonly condition: StanzaErrorCondition, readonly text?: string, readonly type?: ErrorType, readonly app?: Element) {
    super(text ?? condition);
  }
}

/**
 * Whether a stanza may be answered with an error at all: never an error (RFC 6120 §8.3.1), never an iq
 * result (§8.2.3: results and errors are not answered, or two entities could loop), never a presence
 * other than available or probe (RFC 6121 §4.3, §3: subscription states are not bounced).
 */
export function isAnswerable(stanza: Element): boolean {
  const type = stanza.attrs.type;
  if (stanza.name === "iq") return type === "get" || type === "set";
  if (stanza.name === "presence") return type === undefined || type === "probe";
  return type !== "error";
}

/** RFC 6120 §8.3.1: an error stanza is never answered with another error. */
export function isErrorStanza(stanza: Element): boolean {
  return stanza.attrs.type === "error";
}

export function streamError(condition: StreamErrorCondition, text?: string): Element {
  return xml("stream:error", null,
    xml(condition, { xmlns: NS.streams }),
    text ? xml("text", { xmlns: NS.streams, "xml:lang": "en" }, text) : null);
}

/** The first child element of an iq request (its payload), or undefined. */
export function iqPayload(stanza: Element): Element | undefined {
  for (const c of stanza.children) if (typeof c !== "string") return c;
  return undefined;
}
