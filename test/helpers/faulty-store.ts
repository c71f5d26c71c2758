// Store failure injection: a proxy around the real store whose chosen methods reject while switched on
// (`faults.fail("roster.get")`); every other call, and every call after `heal()`, reaches the real store.
import type { AppendSink, Store } from "../../src/storage/types.js";

export class StoreFaults {
  private readonly failing = new Set<string>();
  /** Calls that were made to fail, by "part.method". */
  readonly injected = new Map<string, number>();

  /** Makes these methods ("accounts.get", "timeline.append", "keyValue:muc.get") reject from now on. */
  fail(...methods: string[]): void {
    for (const m of methods) this.failing.add(m);
  }

  heal(): void {
    this.failing.clear();
  }

  wrap = (store: Store): Store => {
    const parts = new Map<string, unknown>();
    const part = (name: string, target: object): unknown => {
      let p = parts.get(name);
      if (!p) parts.set(name, (p = this.faulty(name, target)));
      return p;
    };
    return new Proxy(store, {
      get: (target, key, receiver) => {
        const value = Reflect.get(target, key, receiver);
        if (key === "keyValue") return (storeName: string) => part(`keyValue:${storeName}`, target.keyValue(storeName));
        if (typeof key === "string" && value !== null && typeof value === "object") return part(key, value);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };

  private faulty(name: string, target: object): unknown {
    return new Proxy(target, {
      get: (t, key, receiver) => {
        const value = Reflect.get(t, key, receiver);
        if (typeof value !== "function") return value;
        // appendTo is append() answering a sink instead of a promise: the same write, failed by the same name.
        const method = name === "timeline" && key === "appendTo" ? "timeline.append" : `${name}.${String(key)}`;
        return (...args: unknown[]) => {
          if (this.failing.has(method)) {
            this.injected.set(method, (this.injected.get(method) ?? 0) + 1);
            const err = new Error(`injected store failure: ${method}`);
            if (key === "appendTo") return void queueMicrotask(() => (args[1] as AppendSink).failed(err));
            return Promise.reject(err);
          }
          return value.apply(t, args);
        };
      },
    });
  }
}
