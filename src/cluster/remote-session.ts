// A session bound on another node, as this node sees it: the replicated state the IM rules read
// (presence, priority, interested), and send()/close() that travel over the bus to the owning node.
import type { Element } from "../xml/element.js";
import { parseFramedElement } from "../xml/parser.js";
import { parseJid, type Jid } from "../jid/jid.js";
import { SessionState, type DeliveryMeta, type Session, type Transport } from "../sessions/session.js";
import type { StreamErrorCondition } from "../xml/stanza.js";
import type { SessionRecord } from "./wire.js";

/** How a RemoteSession reaches its node. */
export interface RemoteLink {
  sendRemote(session: RemoteSession, stanza: Element, meta: DeliveryMeta | undefined): void;
  closeRemote(session: RemoteSession, error: StreamErrorCondition | undefined, text: string | undefined): void;
}

export class RemoteSession extends SessionState implements Session {
  override readonly id: string;
  readonly protocol: Transport;
  readonly remoteAddress: string;
  readonly secure: boolean;
  readonly host: string;
  readonly boundAt: number;
  private presenceXml: string | null = null;

  constructor(readonly node: string, record: SessionRecord, private readonly link: RemoteLink) {
    super();
    this.id = record.id;
    this.protocol = record.protocol;
    this.remoteAddress = record.addr;
    this.secure = record.secure;
    this.host = record.host;
    this.boundAt = record.boundAt;
    this.jid = parseJid(record.jid);
    this.username = this.jid.local;
    this.apply(record);
  }

  /** Takes the replicated state of an update. */
  apply(record: SessionRecord): void {
    if (record.presence !== this.presenceXml) {
      this.presenceXml = record.presence;
      this.presence = record.presence === null ? null : parsePresence(record.presence);
    }
    this.priority = record.priority;
    this.interested = record.interested;
    this.directed = record.directed ? new Set(record.directed) : null;
    this.data.clear();
    for (const [k, v] of Object.entries(record.data)) this.data.set(k, v);
  }

  send(stanza: Element, meta?: DeliveryMeta): void {
    if (!this.closed) this.link.sendRemote(this, stanza, meta);
  }

  close(error?: StreamErrorCondition, text?: string): void {
    if (this.closed) return;
    this.closed = true;
    this.link.closeRemote(this, error, text);
  }
}

function parsePresence(xmlText: string): Element | null {
  try {
    return parseFramedElement(xmlText);
  } catch {
    return null;
  }
}
