// The session registry of a cluster node: its own sessions plus a replica of every other node's, as
// RemoteSession proxies in the same maps. Callers (router, IM rules, extensions) read it synchronously
// exactly as on a single node; this class tells the other nodes what changed locally and applies what
// they tell it.
import { SessionRegistry } from "../sessions/registry.js";
import type { Session } from "../sessions/session.js";
import type { Logger } from "../log.js";
import { RemoteSession, type RemoteLink } from "./remote-session.js";
import { recordOf, type SessionRecord } from "./wire.js";

/** Where the registry publishes the changes of its local sessions. */
export interface DirectoryLink extends RemoteLink {
  /** This node's id (it changes when a node that was declared dead rejoins). */
  readonly nodeId: string;
  publishBind(record: SessionRecord): void;
  publishUpdate(record: SessionRecord): void;
  publishUnbind(id: string): void;
}

interface Local {
  session: Session;
  boundAt: number;
  /** The record last published, to skip changes nobody else can see. */
  published: string;
}

export class ClusterRegistry extends SessionRegistry {
  private readonly locals = new Map<string, Local>();
  private readonly remotes = new Map<string, Map<string, RemoteSession>>();

  constructor(
    private readonly link: DirectoryLink,
    /** c2s.resourceConflict: who wins when two nodes bound the same full JID at the same time. */
    private readonly conflictPolicy: "kick-old" | "refuse",
    private readonly log: Logger,
  ) {
    super();
  }

  /** A local session by id (for the bus). */
  localSession(id: string): Session | undefined {
    return this.locals.get(id)?.session;
  }

  localSessions(): Session[] {
    return [...this.locals.values()].map((l) => l.session);
  }

  get localCount(): number { return this.locals.size; }

  /** The nodes this replica holds sessions of. */
  knownNodes(): string[] {
    return [...this.remotes.keys()];
  }

  // ---- local sessions ----

  override add(session: Session): void {
    super.add(session);
    const local: Local = { session, boundAt: Date.now(), published: "" };
    this.locals.set(session.id, local);
    const record = recordOf(session, local.boundAt);
    local.published = JSON.stringify(record);
    this.link.publishBind(record);
  }

  override changed(session: Session): void {
    const local = this.locals.get(session.id);
    if (!local || local.session !== session || !session.jid) return;
    const record = recordOf(session, local.boundAt);
    const text = JSON.stringify(record);
    if (text === local.published) return;
    local.published = text;
    this.link.publishUpdate(record);
  }

  override remove(session: Session): boolean {
    const removed = super.remove(session);
    const local = this.locals.get(session.id);
    if (local && local.session === session) {
      this.locals.delete(session.id);
      this.link.publishUnbind(session.id);
    }
    return removed;
  }

  // ---- the replica ----

  /** A session of another node was bound or changed. */
  upsertRemote(node: string, record: SessionRecord): void {
    let sessions = this.remotes.get(node);
    if (!sessions) this.remotes.set(node, (sessions = new Map()));
    const known = sessions.get(record.id);
    if (known) {
      known.apply(record);
      return;
    }
    const remote = new RemoteSession(node, record, this.link);
    sessions.set(record.id, remote);
    const current = this.get(remote.jid!);
    if (current && current !== remote) {
      // RFC 6120 §7.7.2.2 across nodes: both bound the same full JID before hearing of each other. Every
      // node applies the same rule, so exactly one session survives; its owner closes the loser.
      if (this.loses(remote, current)) return;
      if (this.locals.get(current.id)?.session === current) current.close("conflict", "replaced by a new session");
      else super.remove(current);
    }
    super.add(remote);
  }

  /** A session of another node ended. */
  removeRemote(node: string, id: string): void {
    const sessions = this.remotes.get(node);
    const remote = sessions?.get(id);
    if (!remote) return;
    sessions!.delete(id);
    if (sessions!.size === 0) this.remotes.delete(node);
    remote.closed = true;
    super.remove(remote);
  }

  /** Drops every session of a node (it stopped or died); returns them. */
  dropNode(node: string): RemoteSession[] {
    const sessions = this.remotes.get(node);
    if (!sessions) return [];
    const list = [...sessions.values()];
    for (const r of list) this.removeRemote(node, r.id);
    return list;
  }

  /** Replaces what the replica holds of `node` with a snapshot of its hash. */
  resetNode(node: string, records: SessionRecord[]): void {
    const keep = new Set(records.map((r) => r.id));
    for (const id of [...(this.remotes.get(node)?.keys() ?? [])]) if (!keep.has(id)) this.removeRemote(node, id);
    for (const r of records) this.upsertRemote(node, r);
  }

  /** Whether `challenger` loses a resource conflict against `holder`. */
  private loses(challenger: RemoteSession, holder: Session): boolean {
    const holderAt = holder instanceof RemoteSession ? holder.boundAt : this.locals.get(holder.id)?.boundAt ?? 0;
    const holderKey = holder instanceof RemoteSession ? `${holder.node}/${holder.id}` : `${this.link.nodeId}/${holder.id}`;
    const challengerKey = `${challenger.node}/${challenger.id}`;
    const challengerNewer = challenger.boundAt > holderAt || (challenger.boundAt === holderAt && challengerKey > holderKey);
    const lost = this.conflictPolicy === "kick-old" ? !challengerNewer : challengerNewer;
    if (lost) this.log.debug({ jid: challenger.jid!.toString(), node: challenger.node }, "resource conflict across nodes: the remote session loses");
    return lost;
  }
}
