// Session registry: which resources of which user are bound. This class is the in-process directory of
// a single node; src/cluster extends it with the sessions of the other nodes (RemoteSession proxies), so
// every caller asks the same questions whether or not the server runs as a cluster.
import type { Jid } from "../jid/jid.js";
import type { Session } from "./session.js";

export class SessionRegistry {
  private readonly byBare = new Map<string, Map<string, Session>>();
  private count = 0;

  get size(): number { return this.count; }

  /** Bound sessions of a bare JID (empty array if none). */
  resources(bare: string): Session[] {
    const m = this.byBare.get(bare);
    return m ? [...m.values()] : [];
  }

  hasResources(bare: string): boolean {
    return this.byBare.has(bare);
  }

  get(full: Jid): Session | undefined {
    return this.byBare.get(full.bareString())?.get(full.resource);
  }

  getResource(bare: string, resource: string): Session | undefined {
    return this.byBare.get(bare)?.get(resource);
  }

  /** Registers a bound session. Returns the session it displaced, if any (the caller applies the policy first). */
  add(session: Session): void {
    const jid = session.jid!;
    const bare = jid.bareString();
    let m = this.byBare.get(bare);
    if (!m) this.byBare.set(bare, (m = new Map()));
    if (!m.has(jid.resource)) this.count++;
    m.set(jid.resource, session);
  }

  /**
   * A bound local session changed what other nodes see of it: presence, priority, interested, directed
   * presence, or a boolean/number/short string in `data` (e.g. carbons enabled). Call after the change;
   * nothing to do on a single node.
   */
  changed(_session: Session): void {}

  remove(session: Session): boolean {
    const jid = session.jid;
    if (!jid) return false;
    const bare = jid.bareString();
    const m = this.byBare.get(bare);
    if (!m || m.get(jid.resource) !== session) return false;
    m.delete(jid.resource);
    this.count--;
    if (m.size === 0) this.byBare.delete(bare);
    return true;
  }

  /** Every bound session known here (in a cluster: of every node). */
  *all(): IterableIterator<Session> {
    for (const m of this.byBare.values()) yield* m.values();
  }
}
