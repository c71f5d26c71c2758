// Client State Indication (XEP-0352): while the client says it is inactive, presence updates and chat
// states wait (only the latest per sender), and go out before the next message with a body, or on `<active/>`.
import type { Element } from "../xml/element.js";

export const NS_CSI = "urn:xmpp:csi:0";
const NS_CHATSTATES = "http://jabber.org/protocol/chatstates";
/** Held stanzas beyond this are flushed: the buffer of an inactive client stays bounded. */
export const MAX_HELD = 500;

export class InactiveBuffer {
  private readonly held = new Map<string, Element>();

  get size(): number { return this.held.size; }

  /**
   * Whether `stanza` waits (XEP-0352 §4 leaves the choice to the server): available and unavailable
   * presence, and messages with a chat state and no body. A newer one from the same sender replaces it.
   */
  hold(stanza: Element): boolean {
    const key = holdKey(stanza);
    if (key === null) return false;
    this.held.delete(key);
    this.held.set(key, stanza);
    return true;
  }

  /** Empties the buffer, oldest first. */
  take(): Element[] {
    const out = [...this.held.values()];
    this.held.clear();
    return out;
  }
}

function holdKey(stanza: Element): string | null {
  const from = stanza.attrs.from ?? "";
  if (stanza.name === "presence") {
    const type = stanza.attrs.type;
    return type === undefined || type === "unavailable" ? `p ${from}` : null;
  }
  if (stanza.name === "message" && stanza.attrs.type !== "error" && stanza.getChild("body") === undefined) {
    return stanza.children.some((c) => typeof c !== "string" && c.attrs.xmlns === NS_CHATSTATES) ? `c ${from}` : null;
  }
  return null;
}

/** A message with a body: everything held goes out before it (XEP-0352 §4, urgent stanzas). */
export function isUrgent(stanza: Element): boolean {
  return stanza.name === "message" && stanza.getChild("body") !== undefined;
}
