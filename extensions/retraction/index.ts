// XEP-0424 Message Retraction for 1:1 messages: a retraction is accepted only within the recall window (the
// sender's own copy tells the message's age), and leaves a tombstone on the retracted message in both users'
// timelines, so that history shows it recalled on every client (the mobile adapter's Recall is a retraction).
import { moduleOptions } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import type { StanzaEvent } from "../../src/events/hooks.js";
import { StanzaError } from "../../src/xml/stanza.js";
import { retractTarget } from "../../src/im/message-ids.js";

export interface RetractionService {
  readonly windowSeconds: number;
  /** Whether a message sent at `ts` (ms) is past the recall window. */
  expired(ts: number): boolean;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { retraction: RetractionService }
}

export const retractionOptions = moduleOptions("XEP-0424 message retraction (the mobile Recall is one).", {
  windowSeconds: {
    kind: "integer", min: 0, max: 10 * 365 * 86_400, default: 120,
    description: "How long after sending a message its sender may retract it, in seconds (XMPP and mobile clients alike).",
  },
});

export const retraction = defineModule({
  name: "retraction",
  depends: ["conversations"],
  xep: [{ spec: "XEP-0424", title: "Message Retraction", version: "0.4.2", status: "partial", note: "1:1 retractions within a recall window (modules.retraction.windowSeconds); tombstones in history" }],
  options: retractionOptions,
  setup(api) {
    const { windowSeconds } = api.options;
    const conversations = api.use("conversations");
    const service: RetractionService = {
      windowSeconds,
      expired: (ts) => Date.now() - ts > windowSeconds * 1000,
    };
    api.provide("retraction", service);

    // From any client: only within the recall window.
    const checkWindow = (ev: StanzaEvent): false | Promise<false | StanzaError> => {
      const target = retractTarget(ev.stanza);
      const type = ev.stanza.attrs.type;
      if (target === null || type === "groupchat" || type === "error") return false;
      return conversations.messageById(ev.from.bareString(), ev.to.bareString(), target, true).then((row) =>
        row && service.expired(row.ts) ? new StanzaError("not-allowed", `messages can be retracted for ${windowSeconds} s`) : false);
    };
    api.on("pre-message/bare", checkWindow, "policy");
    api.on("pre-message/full", checkWindow, "policy");

    // Tombstones in both users' timelines (only on messages of the retraction's sender), written before the
    // recipient's sessions get the retraction: a client that then asks for history sees the message recalled.
    // A failure is logged by the event bus and delivery goes on.
    api.observe("message-archived", (ev) => {
      const target = retractTarget(ev.stanza);
      if (target === null) return;
      return recordTombstones(ev.from.bareString(), ev.to.bareString(), target, ev.senderMeta?.seq ?? 0, ev.meta.seq);
    });
    const recordTombstones = async (sender: string, recipient: string, target: string, senderEvent: number, recipientEvent: number) => {
      if (senderEvent > 0) {
        const row = await conversations.messageById(sender, recipient, target, true);
        if (row) await conversations.recalled(sender, row.seq, senderEvent);
      }
      if (recipientEvent > 0) {
        const row = await conversations.messageById(recipient, sender, target, false);
        if (row) await conversations.recalled(recipient, row.seq, recipientEvent);
      }
    };
  },
});
