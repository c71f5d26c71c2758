// The coded failure of a request: thrown by request handlers, answered as an Error frame.
import { ErrorCode } from "./schema.js";
import type { StanzaErrorCondition } from "../xml/stanza.js";
import type { Element } from "../xml/element.js";

export class MobileError extends Error {
  override readonly name = "MobileError";
  constructor(readonly code: ErrorCode, message: string, readonly retryAfterMs = 0) {
    super(message);
  }
}

export const invalid = (message: string): MobileError => new MobileError(ErrorCode.INVALID_ARGUMENT, message);
export const notFound = (message: string): MobileError => new MobileError(ErrorCode.NOT_FOUND, message);
export const forbidden = (message: string): MobileError => new MobileError(ErrorCode.FORBIDDEN, message);

/** The stanza error condition of an error stanza (RFC 6120 §8.3), if any. */
export function stanzaCondition(el: Element): string {
  const err = el.getChild("error");
  const c = err?.children.find((x): x is Element => typeof x !== "string" && x.name !== "text");
  return c?.name ?? "undefined-condition";
}

export function stanzaErrorText(el: Element): string {
  return el.getChild("error")?.getChildText("text") ?? "";
}

/** What an XMPP error stanza means to a mobile client. */
export function fromStanzaError(el: Element, what: string): MobileError {
  return fromCondition(stanzaCondition(el) as StanzaErrorCondition, stanzaErrorText(el), what);
}

/** What a stanza error condition (with its text) means to a mobile client. */
export function fromCondition(condition: StanzaErrorCondition, text: string, what: string): MobileError {
  const msg = `${what}: ${condition}${text ? ` (${text})` : ""}`;
  switch (condition) {
    case "service-unavailable":
    case "remote-server-not-found":
    case "remote-server-timeout":
    case "recipient-unavailable":
    case "gone":
      return new MobileError(ErrorCode.RECIPIENT_UNAVAILABLE, msg);
    case "forbidden":
    case "not-allowed":
    case "not-authorized":
    case "registration-required":
    case "subscription-required":
    case "not-acceptable":
      return new MobileError(ErrorCode.FORBIDDEN, msg);
    case "item-not-found":
      return new MobileError(ErrorCode.NOT_FOUND, msg);
    case "conflict":
      return new MobileError(ErrorCode.CONFLICT, msg);
    case "bad-request":
    case "jid-malformed":
      return new MobileError(ErrorCode.INVALID_ARGUMENT, msg);
    case "policy-violation":
    case "resource-constraint":
      return new MobileError(ErrorCode.RATE_LIMITED, msg, 1000);
    case "feature-not-implemented":
      return new MobileError(ErrorCode.UNSUPPORTED, msg);
    default:
      return new MobileError(ErrorCode.INTERNAL, msg);
  }
}
