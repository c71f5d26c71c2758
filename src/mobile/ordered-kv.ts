// A key-value store whose operations on one (owner, key) take effect in the order they were issued.
//
// The store contract (src/storage/types.ts) promises nothing about calls that are in flight together: the
// SQLite driver resolves each call before the next one starts, but a networked driver (PostgreSQL) runs
// them on different pooled connections, so a later set() can commit before an earlier one (the older value
// wins) and a get() can run before a set() issued earlier has committed. Device acknowledgements are
// written without waiting (once per tick) and read at the next login; through this wrapper the last ack
// written is the one stored, and a login reads it after every write issued before.
import type { KeyValueStore } from "../storage/types.js";

export class OrderedKeyValue implements KeyValueStore {
  /** Per owner and key: the end of the operations issued so far (absent when none is pending). */
  private readonly tails = new Map<string, Promise<unknown>>();

  constructor(private readonly kv: KeyValueStore) {}

  get(owner: string, key: string): Promise<string | null> {
    return this.after(owner, key, () => this.kv.get(owner, key));
  }

  set(owner: string, key: string, value: string | null): Promise<void> {
    return this.after(owner, key, () => this.kv.set(owner, key, value));
  }

  /** Resolves when every operation issued so far has finished (shutdown waits for the last acks). */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }

  private after<T>(owner: string, key: string, op: () => Promise<T>): Promise<T> {
    const id = `${owner}\0${key}`;
    const prev = this.tails.get(id);
    const result = prev === undefined ? op() : prev.then(op);
    const tail = result.then(() => undefined, () => undefined);
    this.tails.set(id, tail);
    void tail.then(() => { if (this.tails.get(id) === tail) this.tails.delete(id); });
    return result;
  }
}
