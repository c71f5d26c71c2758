// The Module API. Core IM (src/im) and every extension are modules: `setup(api)` registers everything
// through `api`, the host records each registration and undoes it when the module unloads.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Element } from "../xml/element.js";
import { reply } from "../xml/stanza.js";
import type { HookBus, HookName, Handler, FoldName, Folder, StanzaEvent, Target } from "../events/hooks.js";
import type { Router } from "../router/router.js";
import type { SessionRegistry } from "../sessions/registry.js";
import type { KeyValueStore, Store } from "../storage/types.js";
import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import type { AccountService } from "../auth/accounts.js";

/** What a module implements, for the generated compliance table. */
export interface SpecInfo {
  /** "XEP-0199", "RFC 6121", … */
  spec: string;
  title: string;
  version?: string;
  status: "complete" | "partial";
  note?: string;
}

export interface ModuleDefinition<O = unknown> {
  name: string;
  /** The specifications this module implements (feeds the README compliance table). */
  xep?: SpecInfo[];
  depends?: string[];
  /** Validates `modules.<name>` from the config; throw an Error naming the problem. */
  options?: (raw: unknown) => O;
  setup(api: ModuleApi<O>): void | Promise<void>;
}

export function defineModule<O = undefined>(def: ModuleDefinition<O>): ModuleDefinition<O> {
  return def;
}

export type IqHandler = (ev: StanzaEvent) => Element | true | void | undefined | Promise<Element | true | void | undefined>;

export interface Identity { category: string; type: string; name?: string }

/** Everything a module may touch, shared by all modules of one server. */
export interface ServerContext {
  readonly config: Config;
  readonly log: Logger;
  readonly store: Store;
  readonly hooks: HookBus;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  readonly accounts: AccountService;
  /** Disco features/identities of the server (scope "host") and of every account (scope "account"). */
  readonly features: { host: Set<string>; account: Set<string> };
  readonly identities: Identity[];
  /**
   * WebSocket endpoints other modules mount on the HTTP port, by path (the mobile adapter at /mobile).
   * A handler takes over the upgrade request's socket.
   */
  readonly httpUpgrades: Map<string, (req: IncomingMessage, socket: Duplex, head: Buffer) => void>;
}

export interface ModuleApi<O = unknown> {
  readonly name: string;
  readonly options: O;
  readonly config: Config;
  readonly log: Logger;
  readonly hosts: readonly string[];
  readonly store: Store;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  readonly accounts: AccountService;
  readonly context: ServerContext;
  on<K extends HookName>(name: K, handler: Handler<K>, priority?: number): void;
  fold<K extends FoldName>(name: K, folder: Folder<K>, priority?: number): void;
  /**
   * Answers iq requests whose payload is `<name xmlns=ns>` sent to `targets`. The handler returns the
   * result child, `true` for an empty result, or nothing to let the next handler (finally the core's
   * `service-unavailable`) answer; a throw becomes `internal-server-error`.
   */
  onIq(type: "get" | "set", targets: Target | Target[], ns: string, name: string, handler: IqHandler, priority?: number): void;
  addFeature(ns: string, scope?: "host" | "account"): void;
  addIdentity(identity: Identity): void;
  addComponent(domain: string): void;
  /** A key-value store private to this module (name-spaced by the module name). */
  openStore(name?: string): KeyValueStore;
  /** Routes a stanza whose from/to are set. */
  send(stanza: Element): void;
  setTimeout(fn: () => void, ms: number): void;
  setInterval(fn: () => void, ms: number): void;
  onUnload(fn: () => void): void;
}

interface Loaded { def: ModuleDefinition<unknown>; undo: Array<() => void> }

export class ModuleHost {
  private readonly loaded = new Map<string, Loaded>();

  constructor(private readonly ctx: ServerContext) {}

  get names(): string[] { return [...this.loaded.keys()]; }
  get definitions(): ModuleDefinition<unknown>[] { return [...this.loaded.values()].map((l) => l.def); }

  /** Loads modules in dependency order; modules listed in `modules.disabled` are skipped. */
  async loadAll(defs: ModuleDefinition<any>[]): Promise<void> {
    const disabled = new Set(this.ctx.config.modules.disabled);
    const byName = new Map(defs.map((d) => [d.name, d]));
    const visiting = new Set<string>();
    const visit = async (def: ModuleDefinition<unknown>): Promise<void> => {
      if (this.loaded.has(def.name) || disabled.has(def.name)) return;
      if (visiting.has(def.name)) throw new Error(`module ${def.name}: circular dependency`);
      visiting.add(def.name);
      for (const dep of def.depends ?? []) {
        const d = byName.get(dep);
        if (!d) throw new Error(`module ${def.name} depends on unknown module ${dep}`);
        if (disabled.has(dep)) throw new Error(`module ${def.name} depends on ${dep}, which modules.disabled turns off`);
        await visit(d);
      }
      await this.load(def);
      visiting.delete(def.name);
    };
    for (const d of defs) await visit(d);
  }

  async load(def: ModuleDefinition<unknown>): Promise<void> {
    if (this.loaded.has(def.name)) throw new Error(`module ${def.name} is loaded already`);
    const raw = (this.ctx.config.modules as Record<string, unknown>)[def.name];
    let options: unknown = raw;
    if (def.options) {
      try {
        options = def.options(raw ?? {});
      } catch (err) {
        throw new Error(`modules.${def.name}: ${(err as Error).message}`);
      }
    }
    const undo: Array<() => void> = [];
    const api = this.apiFor(def.name, options, undo);
    this.loaded.set(def.name, { def, undo });
    try {
      await def.setup(api);
    } catch (err) {
      this.unload(def.name);
      throw err;
    }
  }

  unload(name: string): void {
    const l = this.loaded.get(name);
    if (!l) return;
    this.loaded.delete(name);
    for (const fn of l.undo.reverse()) fn();
  }

  unloadAll(): void {
    for (const name of [...this.loaded.keys()].reverse()) this.unload(name);
  }

  private apiFor(name: string, options: unknown, undo: Array<() => void>): ModuleApi<unknown> {
    const ctx = this.ctx;
    const log = ctx.log.child({ module: name });
    const stores = new Map<string, KeyValueStore>();
    const api: ModuleApi<unknown> = {
      name, options, config: ctx.config, log, hosts: [...ctx.config.hosts], store: ctx.store,
      router: ctx.router, sessions: ctx.sessions, accounts: ctx.accounts, context: ctx,
      on: (ev, handler, priority) => { undo.push(ctx.hooks.on(ev, handler, priority)); },
      fold: (ev, folder, priority) => { undo.push(ctx.hooks.fold(ev, folder, priority)); },
      onIq: (type, targets, ns, el, handler, priority) => {
        for (const t of Array.isArray(targets) ? targets : [targets]) {
          const evName = `iq-${type}/${t}/${ns}:${el}` as const;
          undo.push(ctx.hooks.on(evName, (ev) => {
            const r = handler(ev);
            if (r !== null && typeof r === "object" && typeof (r as Promise<unknown>).then === "function") {
              return (r as Promise<Element | true | void>).then((v) => answerIq(ctx, ev, v));
            }
            return answerIq(ctx, ev, r as Element | true | void);
          }, priority));
        }
      },
      addFeature: (ns, scope = "host") => {
        const set = ctx.features[scope];
        if (set.has(ns)) return;
        set.add(ns);
        undo.push(() => set.delete(ns));
      },
      addIdentity: (identity) => {
        ctx.identities.push(identity);
        undo.push(() => { const i = ctx.identities.indexOf(identity); if (i >= 0) ctx.identities.splice(i, 1); });
      },
      addComponent: (domain) => { undo.push(ctx.router.addComponent(domain)); },
      openStore: (storeName = name) => {
        const key = storeName === name ? name : `${name}:${storeName}`;
        let s = stores.get(key);
        if (!s) stores.set(key, (s = ctx.store.keyValue(key)));
        return s;
      },
      send: (stanza) => { void ctx.router.route(stanza); },
      setTimeout: (fn, ms) => { const t = setTimeout(fn, ms); t.unref(); undo.push(() => clearTimeout(t)); },
      setInterval: (fn, ms) => { const t = setInterval(fn, ms); t.unref(); undo.push(() => clearInterval(t)); },
      onUnload: (fn) => { undo.push(fn); },
    };
    return api;
  }
}

function answerIq(ctx: ServerContext, ev: StanzaEvent, v: Element | true | void | undefined): boolean {
  if (!v) return false;
  const r = reply(ev.stanza, v === true ? null : v);
  // A reply to an iq sent without `to` carries no `from`: it comes from the user's own account (RFC 6120 §10.3.3).
  const s = ev.origin;
  if (s && !s.closed) s.send(r);
  else void ctx.router.route(r);
  return true;
}
