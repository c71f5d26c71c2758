// Session registry: which resources of which user are bound. This class is the in-process directory of
// a single node; src/cluster extends it with the sessions of the other nodes (RemoteSession proxies), so
// every caller asks the same questions whether or not the server runs as a cluster.
import type { Jid } from "../jid/jid.js";
import type { Session } from "./session.js";

export class SessionRegistry {
  /**
   * Per bare JID, its one bound session, or a map by resource once it has several: most users have one
   * resource, and a Map per user cost about 180 bytes of each idle connection.
   */
  private readonly byBare = new Map<string, Session | Map<string, Session>>();
  private count = 0;

  get size(): number { return this.count; }

  /** Bound sessions of a bare JID (empty array if none). */
  resources(bare: string): Session[] {
    const e = this.byBare.get(bare);
    if (e === undefined) return [];
    return e instanceof Map ? [...e.values()] : [e];
  }

  hasResources(bare: string): boolean {
    return this.byBare.has(bare);
  }

  get(full: Jid): Session | undefined {
    return this.getResource(full.bareString(), full.resource);
  }

  getResource(bare: string, resource: string): Session | undefined {
    const e = this.byBare.get(bare);
    if (e === undefined || e instanceof Map) return e?.get(resource);
    return e.jid!.resource === resource ? e : undefined;
  }

  /** Registers a bound session. Returns the session it displaced, if any (the caller applies the policy first). */
  add(session: Session): void {
    const jid = session.jid!;
    const bare = jid.bareString();
    const e = this.byBare.get(bare);
    if (e === undefined) {
      this.byBare.set(bare, session);
      this.count++;
    } else if (e instanceof Map) {
      if (!e.has(jid.resource)) this.count++;
      e.set(jid.resource, session);
    } else if (e.jid!.resource === jid.resource) {
      this.byBare.set(bare, session);
    } else {
      this.byBare.set(bare, new Map([[e.jid!.resource, e], [jid.resource, session]]));
      this.count++;
    }
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
    const e = this.byBare.get(bare);
    if (e === undefined) return false;
    if (!(e instanceof Map)) {
      if (e !== session) return false;
      this.byBare.delete(bare);
      this.count--;
      return true;
    }
    if (e.get(jid.resource) !== session) return false;
    e.delete(jid.resource);
    this.count--;
    if (e.size === 1) this.byBare.set(bare, e.values().next().value!);
    return true;
  }

  /** Every bound session known here (in a cluster: of every node). */
  *all(): IterableIterator<Session> {
    for (const e of this.byBare.values()) {
      if (e instanceof Map) yield* e.values();
      else yield e;
    }
  }
}
