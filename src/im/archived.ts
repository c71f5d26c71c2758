// Which messages the IM rules (message.ts) write to the timeline before delivering them. Shared with the
// c2s session, which lets such messages of one client be handled while earlier ones commit (takeTurn()).
import type { Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";

/** XEP-0334: the sender asked not to store it. */
function storeRefused(stanza: Element): boolean {
  return stanza.getChild("no-store", NS.hints) !== undefined || stanza.getChild("no-permanent-store", NS.hints) !== undefined;
}

/** Whether a message is worth keeping: it has a body (XEP-0160 §3, XEP-0334 hints). */
export function storable(stanza: Element): boolean {
  return !storeRefused(stanza) && (stanza.getChild("body") !== undefined || stanza.getChild("store", NS.hints) !== undefined);
}

/**
 * A chat or normal message with a body and no hint against storing it: every path that delivers one writes
 * it to the timeline first (or answers an error), so it never reaches its recipient ahead of a message
 * sent before it that is still being committed. Anything else (a chat state, a headline) may be delivered
 * at once, and so must wait until the messages before it are done.
 */
export function archivedBeforeDelivery(stanza: Element): boolean {
  const type = stanza.attrs.type;
  return (type === undefined || type === "chat" || type === "normal") && stanza.getChild("body") !== undefined && !storeRefused(stanza);
}
