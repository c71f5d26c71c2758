// A PEP node as stored: its configuration (XEP-0060 §16.4 pubsub#node_config) and its items, newest last.
// One stored value per node: PEP nodes are small and bounded (max_items, a byte limit), read whole, and
// changed by one atomic read-modify-write, which also makes publish-options preconditions race-free.
import { xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { StanzaError } from "../../src/xml/stanza.js";

export const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
export const NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event";
export const NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner";
export const NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors";
export const NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config";
export const PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";

export type AccessModel = "open" | "presence" | "roster" | "whitelist";
export type SendLast = "never" | "on_sub" | "on_sub_and_presence";

export interface NodeConfig {
  accessModel: AccessModel;
  /** null: "max" (the server's limit). */
  maxItems: number | null;
  persistItems: boolean;
  notifyRetract: boolean;
  notifyDelete: boolean;
  sendLastPublishedItem: SendLast;
  rosterGroupsAllowed: string[];
  title: string;
}

export interface StoredItem { id: string; publisher: string; xml: string }
/**
 * Affiliations the owner gave (XEP-0060 §4.1, §8.9) by bare JID: a member reads the node whatever its access
 * model (a whitelist's list), an outcast never does. Absent in nodes stored before affiliations existed.
 */
export type Affiliation = "member" | "outcast";
export interface StoredNode { config: NodeConfig; items: StoredItem[]; affiliations?: Record<string, Affiliation> }

export const DEFAULT_CONFIG: NodeConfig = {
  accessModel: "presence",
  maxItems: 1,
  persistItems: true,
  notifyRetract: true,
  notifyDelete: true,
  sendLastPublishedItem: "on_sub_and_presence",
  rosterGroupsAllowed: [],
  title: "",
};

const ACCESS_MODELS: readonly AccessModel[] = ["open", "presence", "roster", "whitelist"];
const SEND_LAST: readonly SendLast[] = ["never", "on_sub", "on_sub_and_presence"];

function bool(v: string): boolean {
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new StanzaError("not-acceptable", `not a boolean: ${v}`);
}

/** The fields of a submitted data form by var (FORM_TYPE included), each with its values. */
export function formFields(x: Element): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of x.getChildren("field")) {
    if (typeof f.attrs.var !== "string") continue;
    out.set(f.attrs.var, f.getChildren("value").map((v) => v.getText()));
  }
  return out;
}

/**
 * A node_config or publish-options field applied to a configuration. Unknown fields are refused: a client
 * relying on an option we would silently ignore must learn it (XEP-0060 §8.2.5.3 not-acceptable).
 */
function applyField(config: NodeConfig, name: string, values: string[], limit: number): void {
  const v = values[0] ?? "";
  switch (name) {
    case "pubsub#access_model":
      if (!ACCESS_MODELS.includes(v as AccessModel)) throw new StanzaError("not-acceptable", `unsupported access model: ${v}`);
      config.accessModel = v as AccessModel;
      return;
    case "pubsub#max_items": {
      if (v === "max") { config.maxItems = null; return; }
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new StanzaError("not-acceptable", `invalid max_items: ${v}`);
      if (n > limit) throw new StanzaError("not-acceptable", `max_items is limited to ${limit}`);
      config.maxItems = n;
      return;
    }
    case "pubsub#persist_items": config.persistItems = bool(v); return;
    case "pubsub#notify_retract": config.notifyRetract = bool(v); return;
    case "pubsub#notify_delete": config.notifyDelete = bool(v); return;
    case "pubsub#send_last_published_item":
      if (!SEND_LAST.includes(v as SendLast)) throw new StanzaError("not-acceptable", `invalid send_last_published_item: ${v}`);
      config.sendLastPublishedItem = v as SendLast;
      return;
    case "pubsub#roster_groups_allowed": config.rosterGroupsAllowed = values.slice(0, 256); return;
    case "pubsub#title": config.title = v.slice(0, 1024); return;
    // Accepted with the only value PEP has: payloads are always delivered, notifications always sent.
    case "pubsub#deliver_payloads": case "pubsub#deliver_notifications": case "pubsub#notify_config":
    case "pubsub#presence_based_delivery":
      return;
    case "pubsub#publish_model":
      if (v !== "publishers") throw new StanzaError("not-acceptable", "only the owner publishes to a PEP node");
      return;
    default:
      throw new StanzaError("not-acceptable", `unsupported node option: ${name}`);
  }
}

/** A node_config form (submit) applied over `base`. */
export function configFromForm(base: NodeConfig, x: Element, limit: number): NodeConfig {
  const config = { ...base, rosterGroupsAllowed: [...base.rosterGroupsAllowed] };
  if (x.attrs.type === "cancel") return base;
  for (const [name, values] of formFields(x)) if (name !== "FORM_TYPE") applyField(config, name, values, limit);
  return config;
}

/** The value a publish-options field names, as the node has it, for comparison (XEP-0060 §7.1.5). */
function currentValue(config: NodeConfig, name: string): string[] | null {
  switch (name) {
    case "pubsub#access_model": return [config.accessModel];
    case "pubsub#max_items": return [config.maxItems === null ? "max" : String(config.maxItems)];
    case "pubsub#persist_items": return [String(config.persistItems)];
    case "pubsub#notify_retract": return [String(config.notifyRetract)];
    case "pubsub#notify_delete": return [String(config.notifyDelete)];
    case "pubsub#send_last_published_item": return [config.sendLastPublishedItem];
    case "pubsub#roster_groups_allowed": return [...config.rosterGroupsAllowed].sort();
    case "pubsub#title": return [config.title];
    case "pubsub#deliver_payloads": case "pubsub#deliver_notifications": return ["true"];
    case "pubsub#publish_model": return ["publishers"];
    default: return null;
  }
}

function normalized(name: string, values: string[]): string[] {
  if (name === "pubsub#roster_groups_allowed") return [...values].sort();
  if (["pubsub#persist_items", "pubsub#notify_retract", "pubsub#notify_delete", "pubsub#deliver_payloads", "pubsub#deliver_notifications"].includes(name)) {
    return [String(bool(values[0] ?? ""))];
  }
  if (name === "pubsub#max_items" && values[0] !== "max") return [String(Number(values[0]))];
  return values.slice(0, 1);
}

export function preconditionNotMet(text: string): StanzaError {
  return new StanzaError("conflict", text, "cancel", xml("precondition-not-met", { xmlns: NS_PUBSUB_ERRORS }));
}

/**
 * XEP-0060 §7.1.5: publish-options are preconditions on an existing node (every field must equal the node's
 * value, else precondition-not-met) and the configuration of a node the publish creates.
 */
export function checkPreconditions(config: NodeConfig, options: Map<string, string[]>): void {
  for (const [name, values] of options) {
    if (name === "FORM_TYPE") continue;
    const current = currentValue(config, name);
    if (current === null) throw preconditionNotMet(`unsupported publish option: ${name}`);
    if (normalized(name, values).join("\n") !== current.join("\n")) throw preconditionNotMet(`${name} of the node is ${current.join(", ")}`);
  }
}

function field(v: string, type: string, values: string[], label?: string, options?: readonly string[]): Element {
  return xml("field", { var: v, type, label },
    ...values.map((x) => xml("value", null, x)),
    ...(options ?? []).map((o) => xml("option", null, xml("value", null, o))));
}

/** The node's configuration as a form (XEP-0060 §8.2.1). */
export function configForm(config: NodeConfig, type: "form" | "result" = "form"): Element {
  return xml("x", { xmlns: NS.dataForms, type },
    field("FORM_TYPE", "hidden", [NODE_CONFIG]),
    field("pubsub#access_model", "list-single", [config.accessModel], "Who may subscribe and retrieve items", ACCESS_MODELS),
    field("pubsub#max_items", "text-single", [config.maxItems === null ? "max" : String(config.maxItems)], "Max # of items to persist"),
    field("pubsub#persist_items", "boolean", [config.persistItems ? "1" : "0"], "Persist items to storage"),
    field("pubsub#notify_retract", "boolean", [config.notifyRetract ? "1" : "0"], "Notify subscribers when items are removed"),
    field("pubsub#notify_delete", "boolean", [config.notifyDelete ? "1" : "0"], "Notify subscribers when the node is deleted"),
    field("pubsub#send_last_published_item", "list-single", [config.sendLastPublishedItem], "When to send the last published item", SEND_LAST),
    field("pubsub#roster_groups_allowed", "list-multi", config.rosterGroupsAllowed, "Roster groups allowed to subscribe"),
    field("pubsub#title", "text-single", [config.title], "A friendly name for the node"),
    field("pubsub#deliver_payloads", "boolean", ["1"], "Deliver payloads with event notifications"),
  );
}

/**
 * The node after publishing `item`: an item with the same id is replaced and becomes the newest (§7.1.2),
 * the oldest ones go beyond max_items; with persist_items off only the last is kept, for last-item delivery.
 */
export function withItem(node: StoredNode, item: StoredItem, limit: number): StoredNode {
  const items = node.items.filter((i) => i.id !== item.id);
  items.push(item);
  const keep = node.config.persistItems ? Math.min(node.config.maxItems ?? limit, limit) : 1;
  return { ...node, items: items.slice(-keep) };
}

export function trimmed(node: StoredNode, limit: number): StoredNode {
  const keep = node.config.persistItems ? Math.min(node.config.maxItems ?? limit, limit) : 1;
  return { ...node, items: node.items.slice(-keep) };
}

/** A stored node; options added since it was written take their defaults. */
export function parseNode(text: string): StoredNode {
  const parsed = JSON.parse(text) as StoredNode;
  return { config: { ...DEFAULT_CONFIG, ...parsed.config }, items: parsed.items ?? [], affiliations: parsed.affiliations ?? {} };
}
