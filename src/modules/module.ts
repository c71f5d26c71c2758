// The Module API (v2). Core IM (src/im) and every extension are modules: `setup(api)` registers everything
// through `api`, the host records each registration and undoes it when the module unloads; modules never
// clean up by hand and never see the raw buses.
//
// A module serves the configured hosts: its stanza handlers sit on each host's bus. A component (a MUC
// service, later upload or pubsub) asks `api.component(domain)` for an api scoped to its own domain, whose
// handlers only ever see stanzas for that domain.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { Element } from "../xml/element.js";
import {
  PHASES, SERVER_EVENTS, isThenable, type FoldMap, type FoldName, type Folder, type Handler, type HookBus, type HookBuses,
  type ObserveMap, type ObserveName, type Observer, type Phase, type RunMap, type RunName, type StanzaEvent, type Target,
} from "../events/hooks.js";
import type { Jid } from "../jid/jid.js";
import type { Router } from "../router/router.js";
import type { SessionRegistry } from "../sessions/registry.js";
import type { KeyValueStore, Store } from "../storage/types.js";
import { readModuleOptions, type Config } from "../config/config.js";
import type { OptionsSection } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { AccountService } from "../auth/accounts.js";
import { StanzaError } from "../xml/stanza.js";

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
  /**
   * `modules.<name>` in the config, declared with `moduleOptions(...)`: checked and defaulted before
   * `setup`, documented in the README and hearth.example.yaml. A module without it takes no options.
   */
  options?: OptionsSection<O>;
  setup(api: ModuleApi<O>): void | Promise<void>;
}

export function defineModule<O = undefined>(def: ModuleDefinition<O>): ModuleDefinition<O> {
  return def;
}

/**
 * The answer of an iq handler (the xmpp.js callee contract): the result child, `true` for an empty result,
 * or nothing (`false`) to let the next handler (finally the core's `service-unavailable`) answer. Throw a
 * `StanzaError` to answer with that error; any other throw is logged and answered `internal-server-error`.
 */
export type IqAnswer = Element | boolean | void | undefined | null;
export type IqHandler = (ev: StanzaEvent) => IqAnswer | Promise<IqAnswer>;

export interface Identity { category: string; type: string; name?: string }

/**
 * Services modules offer each other (`api.provide` / `api.use`). A module that provides one declares it
 * here by declaration merging, so `use` is typed:
 *   declare module "../../src/modules/module.js" { interface ServiceMap { rooms: RoomsService } }
 */
// eslint-disable-next-line @typescript-eslint/no-empty-interface
export interface ServiceMap {}

/** A WebSocket endpoint on the HTTP port: the handler takes over the upgrade request's socket. */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** A plain HTTP endpoint on the HTTP port: answers every request whose path starts with its prefix. */
export type HttpRequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Everything the host shares with the modules of one server. Internal to src/: modules get an api. */
export interface ServerContext {
  readonly config: Config;
  readonly log: Logger;
  readonly store: Store;
  readonly hooks: HookBuses;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  readonly accounts: AccountService;
  /** Disco features/identities of the server (scope "host") and of every account (scope "account"). */
  readonly features: { host: Set<string>; account: Set<string> };
  readonly identities: Identity[];
  /** WebSocket endpoints modules mount on the HTTP port, by path (the mobile adapter at /mobile). */
  readonly httpUpgrades: Map<string, UpgradeHandler>;
  /** Plain HTTP endpoints modules mount on the HTTP port, by path prefix (file upload at /upload/). */
  readonly httpRequests: Map<string, HttpRequestHandler>;
  /** The HTTP port once listening (null before, or when HTTP is off): modules build public URLs from it. */
  readonly httpPort: { value: number | null };
}

/** Stanza events a module hooks with `on`; iq requests go through `onIq`, which answers exactly once. */
export type StanzaRunName = Exclude<RunName, `iq-${string}`>;

export interface ModuleApi<O = unknown> {
  readonly name: string;
  readonly options: O;
  readonly config: Config;
  readonly log: Logger;
  /** The domains this api's handlers serve: the configured hosts, or a component's domain. */
  readonly hosts: readonly string[];
  readonly store: Store;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  readonly accounts: AccountService;
  /** The disco features and identities every module added (read by the disco module). */
  readonly features: { readonly host: ReadonlySet<string>; readonly account: ReadonlySet<string> };
  readonly identities: readonly Identity[];
  /**
   * Changes whenever any module adds or removes a disco feature, an identity or a fold handler: a value
   * computed from them (the server's caps hash) stays right while this number is the same.
   */
  readonly registryGeneration: number;
  /** A run event (first answer wins), on the bus of each of this api's domains. */
  on<K extends StanzaRunName>(name: K, handler: Handler<K>, phase?: Phase): void;
  /** An observe event: every observer runs in its own error boundary; a failure is logged, never fatal. */
  observe<K extends ObserveName>(name: K, observer: Observer<K>, phase?: Phase): void;
  /** A fold event: a value threaded through every folder. */
  fold<K extends FoldName>(name: K, folder: Folder<K>, phase?: Phase): void;
  /** Answers iq requests with payload `<name xmlns=ns>` sent to `targets` (see IqHandler). */
  onIq(type: "get" | "set", targets: Target | Target[], ns: string, name: string, handler: IqHandler, phase?: Phase): void;
  /** Fires an observe event on the bus of `domain`; await it when what follows needs the observers done. */
  notify<K extends ObserveName>(domain: string, name: K, event: ObserveMap[K]): void | Promise<void>;
  /** Runs a run event on the bus of `domain` (for transports living in modules, e.g. the mobile adapter). */
  run<K extends RunName>(domain: string, name: K, event: RunMap[K]): ReturnType<HookBuses["run"]>;
  runFold<K extends FoldName>(domain: string, name: K, acc: FoldMap[K]["acc"], ctx: FoldMap[K]["ctx"]): FoldMap[K]["acc"];
  addFeature(ns: string, scope?: "host" | "account"): void;
  addIdentity(identity: Identity): void;
  /** Serves the domain(s) as a component of this module and returns an api whose handlers see only them. */
  component(domains: string | string[]): ModuleApi<O>;
  /**
   * In a cluster, has every stanza to this api's domains handled by the one node that owns its key
   * (`keyOf(to)`; null: whichever node gets it). MUC keys by room, so each room lives on one node.
   */
  partition(keyOf: (to: Jid) => string | null): void;
  /** Offers a service to other modules (which list this module in `depends`). */
  provide<K extends keyof ServiceMap>(name: K, impl: ServiceMap[K]): void;
  /** A service another module provides; throws when none does. */
  use<K extends keyof ServiceMap>(name: K): ServiceMap[K];
  /**
   * A service of a module this one can do without (not in `depends`, so it may load later or be disabled):
   * looked up at each call, null while no loaded module provides it.
   */
  useOptional<K extends keyof ServiceMap>(name: K): ServiceMap[K] | null;
  /** Mounts a WebSocket endpoint on the HTTP port at `path`. */
  addHttpEndpoint(path: string, upgrade: UpgradeHandler): void;
  /**
   * Serves plain HTTP requests whose path starts with `prefix` (ending in "/") on the HTTP port. The
   * handler owns the response: it must end it, also when the request fails.
   */
  addHttpHandler(prefix: string, handler: HttpRequestHandler): void;
  /** The port the built-in HTTP server listens on, null before it listens or when it is off. */
  httpPort(): number | null;
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
  /** See ModuleApi.registryGeneration. */
  private generation = 0;
  private readonly services = new Map<string, { module: string; impl: unknown }>();

  constructor(private readonly ctx: ServerContext) {}

  get names(): string[] { return [...this.loaded.keys()]; }
  get definitions(): ModuleDefinition<unknown>[] { return [...this.loaded.values()].map((l) => l.def); }

  /** A service by name, for the composition root and tests (modules use `api.use`). */
  service<K extends keyof ServiceMap>(name: K): ServiceMap[K] | undefined {
    return this.services.get(name)?.impl as ServiceMap[K] | undefined;
  }

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
    const options = readModuleOptions(def, this.ctx.config.modules[def.name]);
    const undo: Array<() => void> = [];
    const api = this.apiFor(def.name, options, undo, this.ctx.config.hosts);
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
    for (const fn of l.undo.reverse()) {
      try {
        fn();
      } catch (err) {
        this.ctx.log.error({ err, module: name }, "undoing a registration failed");
      }
    }
  }

  unloadAll(): void {
    for (const name of [...this.loaded.keys()].reverse()) this.unload(name);
  }

  private apiFor(name: string, options: unknown, undo: Array<() => void>, domains: readonly string[]): ModuleApi<unknown> {
    const ctx = this.ctx;
    const host = this;
    const log = ctx.log.child({ module: name });
    const stores = new Map<string, KeyValueStore>();
    /** A registration that changes what registryGeneration covers, and its undo. */
    const registered = (undoIt: () => void): void => {
      host.generation++;
      undo.push(() => { host.generation++; undoIt(); });
    };
    const hooks = ctx.hooks;
    const router = ctx.router;
    /** The buses a registration goes on: the server bus for server events, else each domain's. */
    const busesFor = (event: string): HookBus[] => {
      if (SERVER_EVENTS.has(event)) return [hooks.server];
      return domains.map((d) => {
        const bus = hooks.of(d);
        if (!bus) throw new Error(`module ${name}: domain ${d} is not served here`);
        return bus;
      });
    };
    const onIq = (type: "get" | "set", targets: Target | Target[], ns: string, el: string, handler: IqHandler, phase: Phase = "handle") => {
      const run = (ev: StanzaEvent): boolean | Promise<boolean> => {
        let r: IqAnswer | Promise<IqAnswer>;
        try {
          r = handler(ev);
        } catch (err) {
          return failed(ev, err);
        }
        if (isThenable(r)) return (r as Promise<IqAnswer>).then((v) => answered(ev, v), (err) => failed(ev, err));
        return answered(ev, r as IqAnswer);
      };
      for (const t of Array.isArray(targets) ? targets : [targets]) {
        for (const bus of busesFor("iq")) undo.push(bus.on(`iq-${type}/${t}/${ns}:${el}`, run, PHASES[phase]));
      }
    };
    const answered = (ev: StanzaEvent, v: IqAnswer): boolean => {
      if (!v) return false;
      router.answer(ev, v === true ? null : v);
      return true;
    };
    const failed = (ev: StanzaEvent, err: unknown): boolean => {
      if (!(err instanceof StanzaError)) throw err;
      router.fail(ev, err);
      return true;
    };
    const api: ModuleApi<unknown> = {
      name, options, config: ctx.config, log, hosts: [...domains], store: ctx.store,
      router, sessions: ctx.sessions, accounts: ctx.accounts, features: ctx.features, identities: ctx.identities,
      get registryGeneration() { return host.generation; },
      on: (ev, handler, phase = "handle") => {
        for (const bus of busesFor(ev)) undo.push(bus.on(ev, handler as never, PHASES[phase]));
      },
      observe: (ev, observer, phase = "handle") => {
        for (const bus of busesFor(ev)) undo.push(bus.observe(ev, observer as never, PHASES[phase]));
      },
      fold: (ev, folder, phase = "handle") => {
        for (const bus of busesFor(ev)) registered(bus.fold(ev, folder as never, PHASES[phase]));
      },
      onIq,
      notify: (domain, ev, event) => hooks.notify(domain, ev, event),
      run: (domain, ev, event) => hooks.run(domain, ev, event),
      runFold: (domain, ev, acc, c) => hooks.runFold(domain, ev, acc, c),
      addFeature: (ns, scope = "host") => {
        const set = ctx.features[scope];
        if (set.has(ns)) return;
        set.add(ns);
        registered(() => set.delete(ns));
      },
      addIdentity: (identity) => {
        ctx.identities.push(identity);
        registered(() => { const i = ctx.identities.indexOf(identity); if (i >= 0) ctx.identities.splice(i, 1); });
      },
      component: (domains) => {
        const list = Array.isArray(domains) ? domains : [domains];
        for (const d of list) undo.push(router.addComponent(d));
        return this.apiFor(name, options, undo, list);
      },
      partition: (keyOf) => {
        for (const d of domains) undo.push(router.partition(d, keyOf));
      },
      provide: (service, impl) => {
        const owner = this.services.get(service);
        if (owner) throw new Error(`module ${name}: service ${service} is provided by ${owner.module} already`);
        this.services.set(service, { module: name, impl });
        undo.push(() => this.services.delete(service));
      },
      use: (service) => {
        const s = this.services.get(service);
        if (!s) throw new Error(`module ${name} uses service ${service}, which no loaded module provides (add its module to depends)`);
        return s.impl as never;
      },
      useOptional: (service) => (this.services.get(service)?.impl ?? null) as never,
      addHttpEndpoint: (path, upgrade) => {
        if (ctx.httpUpgrades.has(path)) throw new Error(`module ${name}: HTTP endpoint ${path} is taken`);
        ctx.httpUpgrades.set(path, upgrade);
        undo.push(() => ctx.httpUpgrades.delete(path));
      },
      addHttpHandler: (prefix, handler) => {
        if (!prefix.startsWith("/") || !prefix.endsWith("/")) throw new Error(`module ${name}: HTTP prefix ${prefix} must start and end with /`);
        if (ctx.httpRequests.has(prefix)) throw new Error(`module ${name}: HTTP prefix ${prefix} is taken`);
        ctx.httpRequests.set(prefix, handler);
        undo.push(() => ctx.httpRequests.delete(prefix));
      },
      httpPort: () => ctx.httpPort.value,
      openStore: (storeName = name) => {
        const key = storeName === name ? name : `${name}:${storeName}`;
        let s = stores.get(key);
        if (!s) stores.set(key, (s = ctx.store.keyValue(key)));
        return s;
      },
      send: (stanza) => { void router.route(stanza); },
      setTimeout: (fn, ms) => { const t = setTimeout(guarded(log, fn), ms); t.unref(); undo.push(() => clearTimeout(t)); },
      setInterval: (fn, ms) => { const t = setInterval(guarded(log, fn), ms); t.unref(); undo.push(() => clearInterval(t)); },
      onUnload: (fn) => { undo.push(fn); },
    };
    return api;
  }
}

/** A timer callback that cannot take the process down: a throw or a rejection is logged. */
function guarded(log: Logger, fn: () => unknown): () => void {
  return () => {
    try {
      const r = fn();
      if (isThenable(r)) (r as Promise<unknown>).then(undefined, (err) => log.error({ err }, "timer failed"));
    } catch (err) {
      log.error({ err }, "timer failed");
    }
  };
}
