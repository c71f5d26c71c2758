// Send (idempotent by client message id), pull by seq ranges, read markers, receipts and recall.
// Each becomes the stanza an XMPP client would send, through the router.
import { randomUUID } from "node:crypto";
import { xml } from "../../xml/element.js";
import {
  ErrorCode,
  type Conversation, type Ok, type Pull, type PullResult, type ReadMarker, type Receipt, type Recall, type RecallResult,
  type SendAck, type SendMessage,
} from "../schema.js";
import { MobileError, forbidden, invalid, notFound } from "../errors.js";
import { MNS, chatStanza, isRetractionXml, retractionStanza, storedMessageId } from "../bridge.js";
import { rowAt, toMessages } from "../context.js";
import { conversationPayload, mirror } from "../conversation.js";
import type { MobileSession } from "../session.js";
import type { TimelineEntry } from "../../storage/types.js";
import { bareJid, clientId, seqField, text } from "./validate.js";

const MAX_MENTIONS = 100;

export async function send(s: MobileSession, req: SendMessage): Promise<SendAck> {
  const id = clientId(req.clientMsgId, "client_msg_id");
  const to = bareJid(s, req.to, "to");
  const max = s.ctx.opts.maxFrameBytes;
  text(req.body, "body", max);
  text(req.searchableText, "searchable_text", max);
  if (req.mentions.length > MAX_MENTIONS) throw invalid(`mentions: at most ${MAX_MENTIONS}`);
  const mentions = req.mentions.map((m, i) => bareJid(s, m, `mentions[${i}]`).toString());
  if (req.body === "" && req.payload.length === 0) throw invalid("body or payload is required");
  const message = { ...req, mentions };
  if (s.ctx.groups.isGroupJid(to)) return s.ctx.groups.send(s, message, to);
  const peer = to.toString();
  // A peer the user blocked: the blocking module refuses the stanza (not-acceptable → FORBIDDEN).
  const { meta, duplicate } = await s.sendMessage(chatStanza(message, peer, "chat"), id);
  if (meta) s.ownRowAcked(meta.seq);
  return { clientMsgId: id, serverMsgId: meta?.stanzaId ?? "", seq: meta?.seq ?? 0, serverTime: meta?.ts ?? Date.now(), duplicate };
}

export async function pull(s: MobileSession, req: Pull): Promise<PullResult> {
  const limit = req.limit === 0 ? 50 : req.limit;
  if (limit < 1 || limit > 500) throw invalid("limit: 1-500");
  let peer: string | undefined;
  if (req.conversation !== "") {
    const j = bareJid(s, req.conversation, "conversation");
    if (s.ctx.groups.isGroupJid(j)) return s.ctx.groups.pull(s, j, req, limit);
    peer = j.toString();
  }
  const timeline = s.ctx.api.store.timeline;
  const owner = s.owner;
  let rows: TimelineEntry[];
  let isEnd: boolean;
  if (req.afterSeq > 0) {
    rows = await timeline.query(owner, { with: peer, afterSeq: req.afterSeq, limit: limit + 1 });
    isEnd = rows.length <= limit;
    rows = rows.slice(0, limit);
  } else {
    rows = await timeline.query(owner, { with: peer, beforeSeq: req.beforeSeq > 0 ? req.beforeSeq : undefined, reverse: true, limit: limit + 1 });
    isEnd = rows.length <= limit;
    rows = rows.slice(0, limit).reverse();
  }
  return { messages: await toMessages(s.ctx, owner, rows), isEnd };
}

export async function readMarker(s: MobileSession, req: ReadMarker): Promise<Conversation> {
  const conv = bareJid(s, req.conversation, "conversation");
  const seq = seqField(req.seq, "seq");
  if (s.ctx.groups.isGroupJid(conv)) return s.ctx.groups.readMarker(s, conv, seq);
  const owner = s.owner;
  const peer = conv.toString();
  if (seq > (await s.ctx.api.store.timeline.lastSeq(owner))) throw invalid("seq: beyond the newest message");
  const { conversation, changed } = await s.ctx.conversations.markRead(owner, peer, seq);
  const payload = await conversationPayload(s.ctx, owner, conversation);
  if (changed) {
    mirror(s, payload);
    // XEP-0333: `displayed` for the newest incoming message up to seq.
    const rows = await s.ctx.api.store.timeline.query(owner, { with: peer, beforeSeq: seq + 1, reverse: true, limit: 100 });
    const newest = rows.find((r) => !r.outgoing && !isRetractionXml(r.xml));
    const id = newest ? storedMessageId(newest) : "";
    if (id !== "") await s.route(xml("message", { type: "chat", to: peer, id: randomUUID() }, xml("displayed", { xmlns: MNS.markers, id })));
  }
  return payload;
}

export async function receipt(s: MobileSession, req: Receipt): Promise<Ok> {
  const conv = bareJid(s, req.conversation, "conversation");
  const seq = seqField(req.seq, "seq");
  if (s.ctx.groups.isGroupJid(conv)) throw invalid("receipts are for 1:1 messages");
  const row = await rowAt(s.ctx, s.owner, seq);
  if (!row || row.peer !== conv.toString() || row.outgoing) throw notFound(`no incoming message at seq ${seq} in this conversation`);
  const id = storedMessageId(row);
  if (id === "") throw notFound("the message has no id to acknowledge");
  // XEP-0184 §5.1: the receipt carries the id of the message it acknowledges.
  await s.route(xml("message", { type: "chat", to: row.peer, id: randomUUID() }, xml("received", { xmlns: MNS.receipts, id })));
  return {};
}

export async function recall(s: MobileSession, req: Recall): Promise<RecallResult> {
  const conv = bareJid(s, req.conversation, "conversation");
  const seq = seqField(req.seq, "seq");
  if (s.ctx.groups.isGroupJid(conv)) return s.ctx.groups.recall(s, conv, seq);
  const owner = s.owner;
  const row = await rowAt(s.ctx, owner, seq);
  if (!row || row.peer !== conv.toString()) throw notFound(`no message at seq ${seq} in this conversation`);
  if (!row.outgoing) throw forbidden("only the sender may recall a message");
  const targetId = storedMessageId(row);
  const first = (await s.ctx.conversations.recalls(owner)).get(seq);
  if (first !== undefined) {
    const event = await rowAt(s.ctx, owner, first);
    return { recalledSeq: seq, seq: first, serverTime: event?.ts ?? row.ts };
  }
  if (isRetractionXml(row.xml)) throw invalid("a recall cannot be recalled");
  if (s.ctx.retraction.expired(row.ts)) {
    throw new MobileError(ErrorCode.RECALL_EXPIRED, `messages can be recalled for ${s.ctx.retraction.windowSeconds} s`);
  }
  if (targetId === "") throw new MobileError(ErrorCode.UNSUPPORTED, "the message has no id to recall it by");
  // A stable id: a resent Recall is deduplicated like any resent message.
  const id = `recall-${targetId}`.slice(0, 64);
  const { meta } = await s.sendMessage(retractionStanza(row.peer, "chat", targetId, id), id);
  if (!meta) throw new MobileError(ErrorCode.INTERNAL, "the recall was not stored");
  s.ownRowAcked(meta.seq);
  await s.ctx.conversations.recalled(owner, seq, meta.seq);
  return { recalledSeq: seq, seq: meta.seq, serverTime: meta.ts };
}

