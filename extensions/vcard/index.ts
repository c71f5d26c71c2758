// XEP-0054: vcard-temp. Users publish their own vCard; anyone may read a user's vCard at the bare JID.
import * as ltx from "ltx";
import { moduleOptions } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { clone, xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { StanzaError } from "../../src/xml/stanza.js";

const KEY = "vcard";

export const vcardOptions = moduleOptions("vcard-temp (XEP-0054).", {
  maxBytes: {
    kind: "integer",
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    default: 65_536,
    description: "Largest serialized vCard accepted, in bytes.",
  },
});

/** A user's vCard changed (set by the user or through the service); null: removed. */
export type VcardListener = (owner: string, card: Element | null) => void;

/** vcard-temp for other modules (XEP-0398 avatar conversion). */
export interface VcardService {
  get(owner: string): Promise<Element | null>;
  /** Stores a vCard the server made (not size-checked: its parts were checked where they came from). */
  set(owner: string, card: Element | null): Promise<void>;
  /** Hears every change, the user's own sets included. */
  onChange(listener: VcardListener): () => void;
}

declare module "../../src/modules/module.js" {
  interface ServiceMap { vcards: VcardService }
}

export const vcard = defineModule({
  name: "vcard",
  xep: [{ spec: "XEP-0054", title: "vcard-temp", version: "1.3.0", status: "complete" }],
  options: vcardOptions,
  setup(api) {
    const store = api.openStore();
    const load = async (owner: string): Promise<Element | null> => {
      const text = await store.get(owner, KEY);
      return text === null ? null : (ltx.parse(text) as Element);
    };
    const listeners = new Set<VcardListener>();
    const save = async (owner: string, card: Element | null): Promise<void> => {
      await store.set(owner, KEY, card === null ? null : card.toString());
      for (const l of listeners) {
        try { l(owner, card); } catch (err) { api.log.error({ err }, "vCard listener failed"); }
      }
    };
    api.provide("vcards", { get: load, set: save, onChange: (l) => { listeners.add(l); return () => listeners.delete(l); } });

    // XEP-0054 §4: support is announced by the server and for its accounts.
    api.addFeature(NS.vcard);
    api.addFeature(NS.vcard, "account");

    // XEP-0054 §3.1: one's own vCard, or an empty <vCard/> when there is none.
    api.onIq("get", "self", NS.vcard, "vCard", async (ev) =>
      (await load(ev.from.bareString())) ?? xml("vCard", { xmlns: NS.vcard }));

    // XEP-0054 §3.3: the server answers for the user; a missing vCard and a missing user give the same
    // service-unavailable, against directory harvesting.
    api.onIq("get", "bare", NS.vcard, "vCard", async (ev) => {
      const card = await load(ev.to.bareString());
      if (!card) throw new StanzaError("service-unavailable");
      return card;
    });

    api.onIq("set", "self", NS.vcard, "vCard", async (ev) => {
      const card = ev.stanza.getChild("vCard", NS.vcard)!;
      const owner = ev.from.bareString();
      if (card.getChildElements().length === 0 && card.getText().trim() === "") {
        await save(owner, null);
        return true;
      }
      const stored = xml("vCard", { xmlns: NS.vcard });
      for (const c of card.children) stored.cnode(typeof c === "string" ? c : clone(c));
      const text = stored.toString();
      if (Buffer.byteLength(text, "utf8") > api.options.maxBytes) {
        throw new StanzaError("policy-violation", `the vCard is larger than ${api.options.maxBytes} bytes`);
      }
      await save(owner, stored);
      return true;
    });

    // XEP-0054 §3.2: only one's own vCard can be changed.
    api.onIq("set", ["bare", "host"], NS.vcard, "vCard", () => {
      throw new StanzaError("forbidden", "you can only change your own vCard");
    });

    api.observe("account-deleted", ({ host, username }) => store.set(`${username}@${host}`, KEY, null).then(() => false));
  },
});
