// PEP dialogue helpers shared by the PEP, bookmarks and avatar tests: raw clients that announce entity
// capabilities (XEP-0115) and answer the server's disco#info about them, subscriptions, pubsub requests.
import { RawClient } from "./raw-client.js";
import type { TestServer } from "./server.js";
import { xml, type Element } from "../../src/xml/element.js";
import { capsVer } from "../../extensions/disco/caps.js";

export const PUBSUB = "http://jabber.org/protocol/pubsub";
export const OWNER = "http://jabber.org/protocol/pubsub#owner";
export const EVENT = "http://jabber.org/protocol/pubsub#event";
export const ERRORS = "http://jabber.org/protocol/pubsub#errors";
export const INFO = "http://jabber.org/protocol/disco#info";
export const CAPS = "http://jabber.org/protocol/caps";
export const ROSTER = "jabber:iq:roster";
export const DEVICELIST = "eu.siacs.conversations.axolotl.devicelist";
export const OMEMO2 = "urn:xmpp:omemo:2";

let n = 0;
export const fresh = (p: string) => `${p}${++n}${Date.now().toString(36)}`;

export const form = (type: string, formType: string, fields: Record<string, string | string[]>) =>
  xml("x", { xmlns: "jabber:x:data", type },
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", null, formType)),
    ...Object.entries(fields).map(([v, vals]) => xml("field", { var: v }, ...(Array.isArray(vals) ? vals : [vals]).map((x) => xml("value", null, x)))));
export const publishOptions = (fields: Record<string, string | string[]>) =>
  xml("publish-options", null, form("submit", "http://jabber.org/protocol/pubsub#publish-options", fields));

export const publish = (c: RawClient, node: string, id: string | null, payload: Element, options?: Element) =>
  c.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: PUBSUB }, xml("publish", { node }, xml("item", id ? { id } : null, payload)), options ?? null)));
export const getItems = (c: RawClient, owner: string, node: string, attrs: Record<string, string> = {}, ids: string[] = []) =>
  c.iq(xml("iq", { type: "get", to: owner }, xml("pubsub", { xmlns: PUBSUB }, xml("items", { node, ...attrs }, ...ids.map((id) => xml("item", { id }))))));
export const configure = (c: RawClient, node: string, fields: Record<string, string | string[]>) =>
  c.iq(xml("iq", { type: "set" }, xml("pubsub", { xmlns: OWNER }, xml("configure", { node }, form("submit", "http://jabber.org/protocol/pubsub#node_config", fields)))));
export const itemIds = (res: Element) => res.getChild("pubsub", PUBSUB)!.getChild("items")!.getChildren("item").map((i) => i.attrs.id);
export const devicelist = (...ids: number[]) => xml("list", { xmlns: "eu.siacs.conversations.axolotl" }, ...ids.map((id) => xml("device", { id: String(id) })));
export const appError = (res: Element) => res.getChild("error")?.getChildElements().find((c) => c.attrs.xmlns === ERRORS)?.name;

/** A headline PEP event from `owner` about `node`. */
export const eventFor = (owner: string, node: string) => (el: Element) =>
  el.name === "message" && el.attrs.from === owner && el.getChild("event", EVENT)?.getChild("items")?.attrs.node === node;
export const anyEvent = (el: Element) => el.name === "message" && el.getChild("event", EVENT) !== undefined;

/** What a client says it supports (XEP-0115): answers the server's disco#info and counts the questions. */
export interface Caps { features: string[]; ver: string; queries: number }
export function capsOf(features: string[]): Caps {
  const identities = [{ category: "client", type: "phone", name: "hearth test" }];
  return { features, ver: capsVer(identities, features), queries: 0 };
}

export async function login(ts: TestServer, user: string, resource?: string): Promise<RawClient> {
  if (!(await ts.accounts.exists(ts.host, user))) await ts.accounts.create(ts.host, user, "password");
  const c = await RawClient.connect(ts);
  await c.login(user, "password", resource);
  await c.iq(xml("iq", { type: "get" }, xml("query", { xmlns: ROSTER })));
  return c;
}

/** Initial presence with caps; answers the server's disco#info query (if it asks) with the features. */
export async function online(c: RawClient, caps: Caps | null, opts: { lie?: boolean } = {}): Promise<void> {
  c.send(xml("presence", null, caps ? xml("c", { xmlns: CAPS, hash: "sha-1", node: "urn:hearth:test", ver: caps.ver }) : null));
  await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid);
  if (caps) void answerDisco(c, caps, opts.lie ?? false);
}

export async function answerDisco(c: RawClient, caps: Caps, lie: boolean): Promise<void> {
  for (;;) {
    let q: Element;
    try { q = await c.receive((el) => el.name === "iq" && el.attrs.type === "get" && el.getChild("query", INFO) !== undefined, 20_000); } catch { return; }
    caps.queries++;
    const features = lie ? [...caps.features, "urn:example:extra"] : caps.features;
    c.send(xml("iq", { type: "result", id: q.attrs.id, to: q.attrs.from },
      xml("query", { xmlns: INFO, node: q.getChild("query")!.attrs.node },
        xml("identity", { category: "client", type: "phone", name: "hearth test" }),
        ...features.map((f) => xml("feature", { var: f })))));
  }
}

export async function subscribe(a: RawClient, b: RawClient, ms = 3000): Promise<void> {
  const A = a.jid.split("/")[0], B = b.jid.split("/")[0];
  a.send(xml("presence", { to: B, type: "subscribe" }));
  await b.receive((el) => el.name === "presence" && el.attrs.type === "subscribe", ms);
  b.send(xml("presence", { to: A, type: "subscribed" }));
  // The roster push that shows A now subscribed to B (RFC 6121 §3.1.6).
  await a.receive((el) => {
    const item = el.name === "iq" ? el.getChild("query", ROSTER)?.getChild("item") : undefined;
    return item?.attrs.jid === B && (item.attrs.subscription === "to" || item.attrs.subscription === "both");
  }, ms);
}

/**
 * Presence subscriptions both ways between two logged-in clients, which end unavailable again: their next
 * available presence is an initial one (RFC 6121 §4.2), as after a fresh login.
 */
export async function friends(a: RawClient, b: RawClient, ms = 3000): Promise<void> {
  for (const c of [a, b]) {
    c.send(xml("presence"));
    await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid && el.attrs.type === undefined);
  }
  await subscribe(a, b, ms);
  await subscribe(b, a, ms);
  for (const c of [a, b]) {
    c.send(xml("presence", { type: "unavailable" }));
    await c.receive((el) => el.name === "presence" && el.attrs.from === c.jid && el.attrs.type === "unavailable");
  }
}

/** Polls until `fn` holds (the machine may be loaded: no fixed short sleeps). */
export async function until(fn: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

