// XEP-0049: Private XML Storage. Each user keeps XML fragments on the server, one per qualified name
// of the fragment's root element.
import * as ltx from "ltx";
import { moduleOptions } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { clone, xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { StanzaError } from "../../src/xml/stanza.js";

export const NS_PRIVATE = "jabber:iq:private";
const KEY = "fragments";

export const privateOptions = moduleOptions("Private XML storage (XEP-0049).", {
  maxBytesPerUser: {
    kind: "integer",
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    default: 262_144,
    description: "Total size of one user's fragments, in bytes.",
  },
});

/** XEP-0049 §2.3: 'jabber:*', 'http://jabber.org/*' and 'vcard-temp' are reserved. */
export function isReservedNamespace(ns: string): boolean {
  return ns.startsWith("jabber:") || ns.startsWith("http://jabber.org/") || ns === NS.vcard;
}

/** The storage key of a fragment: its root's namespace and local name, in Clark notation. */
function keyOf(el: Element): string {
  return `{${el.getNS() ?? ""}}${el.getName()}`;
}

/** A standalone copy of a fragment: it keeps the namespace it inherited from the request. */
function standalone(el: Element): Element {
  const copy = clone(el);
  const ns = el.getNS() ?? "";
  const colon = el.name.indexOf(":");
  if (colon < 0) copy.attrs.xmlns = ns;
  else copy.attrs[`xmlns:${el.name.slice(0, colon)}`] = ns;
  return copy;
}

/** The fragments of the query, each checked: at least one, none in a reserved namespace (XEP-0049 §2.3, §3). */
function fragmentsOf(query: Element): Element[] {
  const fragments = query.getChildElements();
  if (fragments.length === 0) throw new StanzaError("not-acceptable", "the query needs a child element");
  for (const f of fragments) {
    if (isReservedNamespace(f.getNS() ?? "")) throw new StanzaError("not-acceptable", `${f.getNS() ?? "no namespace"} is reserved`);
  }
  return fragments;
}

/** A fragment another module keeps elsewhere (XEP-0402 #compat: bookmarks live in PEP). */
export interface FragmentHandler {
  /** The fragment as stored, or null for none (the empty requested element is answered then). */
  get(owner: string): Promise<Element | null>;
  set(owner: string, fragment: Element): Promise<void>;
}

export interface PrivateService {
  /** Hands the fragments with this root namespace and name to `handler` instead of the private store. */
  delegate(ns: string, name: string, handler: FragmentHandler): void;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { privateXml: PrivateService }
}

export const private_ = defineModule({
  name: "private",
  xep: [{ spec: "XEP-0049", title: "Private XML Storage", version: "1.2", status: "complete" }],
  options: privateOptions,
  setup(api) {
    const store = api.openStore();
    // One value per user, so an account's data goes with one write. Sets of one user are serialized:
    // two resources storing at once must not lose each other's fragments.
    const queues = new Map<string, Promise<unknown>>();
    const serialized = <T>(owner: string, fn: () => Promise<T>): Promise<T> => {
      const prev = queues.get(owner) ?? Promise.resolve();
      const run = prev.then(fn, fn);
      const tail = run.catch(() => undefined);
      queues.set(owner, tail);
      void tail.then(() => { if (queues.get(owner) === tail) queues.delete(owner); });
      return run;
    };
    const load = async (owner: string): Promise<Record<string, string>> =>
      JSON.parse((await store.get(owner, KEY)) ?? "{}") as Record<string, string>;

    api.addFeature(NS_PRIVATE);

    const delegated = new Map<string, FragmentHandler>();
    api.provide("privateXml", {
      delegate: (ns, name, handler) => {
        const key = `{${ns}}${name}`;
        delegated.set(key, handler);
        api.onUnload(() => delegated.delete(key));
      },
    });

    api.onIq("get", "self", NS_PRIVATE, "query", async (ev) => {
      const requested = fragmentsOf(ev.stanza.getChild("query", NS_PRIVATE)!);
      const stored = await load(ev.from.bareString());
      const result = xml("query", { xmlns: NS_PRIVATE });
      // XEP-0049 §2.3: nothing stored answers with the (empty) element that was asked for.
      for (const r of requested) {
        const handler = delegated.get(keyOf(r));
        const text = stored[keyOf(r)];
        const found = handler ? await handler.get(ev.from.bareString()) : text !== undefined ? (ltx.parse(text) as Element) : null;
        result.cnode(found ?? standalone(r));
      }
      return result;
    });

    api.onIq("set", "self", NS_PRIVATE, "query", async (ev) => {
      const fragments = fragmentsOf(ev.stanza.getChild("query", NS_PRIVATE)!);
      const owner = ev.from.bareString();
      for (const f of fragments) await delegated.get(keyOf(f))?.set(owner, standalone(f));
      const kept = fragments.filter((f) => !delegated.has(keyOf(f)));
      if (kept.length === 0) return true;
      await serialized(owner, async () => {
        const stored = await load(owner);
        for (const f of kept) stored[keyOf(f)] = standalone(f).toString();
        const text = JSON.stringify(stored);
        if (Buffer.byteLength(text, "utf8") > api.options.maxBytesPerUser) {
          throw new StanzaError("resource-constraint", `private storage is limited to ${api.options.maxBytesPerUser} bytes`, "cancel");
        }
        await store.set(owner, KEY, text);
      });
      return true;
    });

    // XEP-0049 §2.3: another user's data is forbidden.
    for (const type of ["get", "set"] as const) {
      api.onIq(type, ["bare", "host"], NS_PRIVATE, "query", () => {
        throw new StanzaError("forbidden", "private data can only be accessed by its owner");
      });
    }

    api.observe("account-deleted", ({ host, username }) => store.set(`${username}@${host}`, KEY, null).then(() => false));
  },
});
