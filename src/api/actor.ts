// Acting as a user from the server API: a session of the user that no socket holds. Stanzas it sends go
// through the router exactly as a client's do (from stamped, pre- events, blocking, archive, carbons), so
// a message the API sends "as alice" is indistinguishable from one alice's client sent. For work that needs
// answers addressed to a full JID (entering a MUC room), the actor is bound for the duration of that work
// only, on a resource of its own (`api-<random>`), and unbound afterwards.
import { randomBytes } from "node:crypto";
import type { Element } from "../xml/element.js";
import { jid, type Jid } from "../jid/jid.js";
import type { Router } from "../router/router.js";
import type { SessionRegistry } from "../sessions/registry.js";
import { SessionState, type DeliveryMeta, type Session, type Transport } from "../sessions/session.js";
import type { StreamErrorCondition } from "../xml/stanza.js";

let iqCounter = 0;

export class ApiActor extends SessionState implements Session {
  /** Not a transport clients use; the Transport type lists the real ones only (metrics label by them). */
  static readonly PROTOCOL = "api" as Transport;
  readonly protocol = ApiActor.PROTOCOL;
  readonly remoteAddress = "127.0.0.1";
  readonly secure = true;
  readonly host: string;
  private readonly waiters = new Set<{ match(el: Element): boolean; resolve(el: Element): void }>();
  private bound = false;

  constructor(private readonly router: Router, private readonly sessions: SessionRegistry, user: string, host: string) {
    super();
    this.host = host;
    this.username = user;
    this.jid = jid(user, host, `api-${randomBytes(6).toString("hex")}`);
  }

  send(stanza: Element, _meta?: DeliveryMeta): void {
    for (const w of this.waiters) {
      if (w.match(stanza)) { this.waiters.delete(w); w.resolve(stanza); return; }
    }
  }

  close(_error?: StreamErrorCondition, _text?: string): void {
    this.unbind();
  }

  /** Makes the actor reachable at its full JID (for answers to presence and messages). */
  bind(): void {
    if (this.bound) return;
    this.sessions.add(this);
    this.bound = true;
  }

  unbind(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.bound) this.sessions.remove(this);
    for (const w of this.waiters) w.resolve(null as unknown as Element);
    this.waiters.clear();
  }

  get fullJid(): Jid { return this.jid!; }

  /** Waits for a stanza to this actor that `match` accepts (rejects after `ms`). */
  expect(match: (el: Element) => boolean, ms = 10_000): Promise<Element> {
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (el: Element) => { clearTimeout(timer); if (el) resolve(el); else reject(new Error("the actor ended")); },
      };
      const timer = setTimeout(() => { this.waiters.delete(w); reject(new Error("no answer within the deadline")); }, ms);
      this.waiters.add(w);
    });
  }

  /** Sends a stanza as the user, the way a client would. */
  async route(el: Element): Promise<void> {
    await this.router.fromClient(this, el);
  }

  /** An iq request as the user; resolves to the result or error stanza. */
  async iq(el: Element): Promise<Element> {
    const id = `api${(iqCounter++).toString(36)}`;
    el.attrs.id = id;
    const answer = this.expect((s) => s.name === "iq" && s.attrs.id === id && (s.attrs.type === "result" || s.attrs.type === "error"));
    await this.router.fromClient(this, el);
    return answer;
  }
}
