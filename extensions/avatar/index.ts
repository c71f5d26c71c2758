// XEP-0398 User Avatar to vCard-Based Avatars Conversion: an account has one avatar whichever way its
// clients set it. A XEP-0084 avatar published with PEP (metadata naming a data item) becomes the vCard's
// PHOTO; a vCard PHOTO set by a XEP-0054/0153 client is published to the XEP-0084 nodes. The server puts the
// avatar's XEP-0153 hash into the user's broadcast presence when the client did not, and broadcasts the
// presence again when the avatar changes, so vCard-based contacts learn about it.
import { createHash } from "node:crypto";
import { defineModule } from "../../src/modules/module.js";
import { shallowCopy, xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { StanzaError } from "../../src/xml/stanza.js";
import type { StanzaEvent } from "../../src/events/hooks.js";

export const NS_AVATAR_DATA = "urn:xmpp:avatar:data";
export const NS_AVATAR_METADATA = "urn:xmpp:avatar:metadata";
const NS_VCARD_UPDATE = "vcard-temp:x:update";
const NS_CONVERSION = "urn:xmpp:pep-vcard-conversion:0";

/** Avatars are public in vCards, so the PEP nodes are too (what Conversations asks for). */
const NODE_OPTIONS = { "pubsub#access_model": "open" };

export interface Avatar { hash: string; type: string; base64: string; bytes: number }

/** The PHOTO of a vCard (XEP-0153 §3.1), with its SHA-1 over the image bytes; null when there is none. */
export function photoOf(card: Element | null): Avatar | null {
  const photo = card?.getChild("PHOTO");
  const base64 = photo?.getChildText("BINVAL")?.replace(/\s+/g, "") ?? "";
  if (!photo || base64 === "") return null;
  const bytes = Buffer.from(base64, "base64");
  if (bytes.length === 0) return null;
  return { hash: createHash("sha1").update(bytes).digest("hex"), type: photo.getChildText("TYPE") ?? "image/png", base64: bytes.toString("base64"), bytes: bytes.length };
}

export const avatar = defineModule({
  name: "avatar",
  depends: ["pep", "vcard"],
  xep: [
    { spec: "XEP-0084", title: "User Avatar", version: "1.1.4", status: "complete", note: "through PEP" },
    { spec: "XEP-0398", title: "User Avatar to vCard-Based Avatars Conversion", version: "0.2.1", status: "complete" },
    { spec: "XEP-0153", title: "vCard-Based Avatars", version: "1.1", status: "complete", note: "the server adds the photo hash to presence and keeps it equal to the XEP-0084 avatar" },
  ],
  setup(api) {
    const pep = api.use("pep");
    const vcards = api.use("vcards");
    api.addFeature(NS_CONVERSION, "account");

    // Per user, the current avatar hash ("" for none), for the presence of every broadcast.
    const hashes = new Map<string, string>();
    const hashOf = async (owner: string): Promise<string> => {
      let h = hashes.get(owner);
      if (h === undefined) {
        h = photoOf(await vcards.get(owner))?.hash ?? "";
        if (hashes.size > 100_000) hashes.clear();
        hashes.set(owner, h);
      }
      return h;
    };

    // One annotation per hash, shared by the presences that carry it (as fan-out copies share children): each
    // session keeps its presence, and two elements of its own in it were about 330 bytes of every idle
    // connection. Nothing changes an element inside a stored presence; the rebroadcast below leaves it out.
    const annotations = new Map<string, Element>();
    /** XEP-0153 §4.1: the server puts the hash into presence the client sent without one. */
    const annotate = (stanza: Element, hash: string) => {
      if (stanza.getChild("x", NS_VCARD_UPDATE)) return;
      let x = annotations.get(hash);
      if (x === undefined) {
        if (annotations.size > 10_000) annotations.clear();
        annotations.set(hash, (x = xml("x", { xmlns: NS_VCARD_UPDATE }, xml("photo", null, hash || null))));
      }
      stanza.children.push(x);
    };
    // Read at bind, so that the presence that follows is annotated without waiting for the store.
    api.observe("resource-bind", ({ session }) => {
      if (session.jid) void hashOf(session.jid.bareString()).catch((err) => api.log.warn({ err }, "reading the avatar hash failed"));
    });
    api.on("pre-presence/self", (ev: StanzaEvent) => {
      if (!ev.origin || ev.stanza.attrs.to !== undefined || ev.stanza.attrs.type !== undefined) return false;
      const owner = ev.from.bareString();
      const known = hashes.get(owner);
      if (known !== undefined) { annotate(ev.stanza, known); return false; }
      return hashOf(owner).then((h) => { annotate(ev.stanza, h); return false; });
    }, "annotate");

    /** After a change, each available resource's presence goes out again with the new hash. */
    const rebroadcast = (owner: string) => {
      for (const s of api.sessions.resources(owner)) {
        if (s.presence === null || s.closed) continue;
        const p = shallowCopy(s.presence);
        p.children = p.children.filter((c) => typeof c === "string" || !(c.name === "x" && c.getNS() === NS_VCARD_UPDATE));
        void api.router.fromClient(s, p);
      }
    };

    // vCard → XEP-0084 (XEP-0398 §4: the server publishes what a vCard client set).
    api.onUnload(vcards.onChange((owner, card) => {
      const photo = photoOf(card);
      const hash = photo?.hash ?? "";
      if (hashes.get(owner) === hash) return;
      hashes.set(owner, hash);
      void toPep(owner, photo).then(() => rebroadcast(owner), (err) => api.log.warn({ err }, "publishing a vCard avatar to PEP failed"));
    }));

    const publish = async (owner: string, node: string, id: string, payload: Element): Promise<void> => {
      try {
        await pep.publish(owner, node, id, payload, NODE_OPTIONS);
      } catch (err) {
        // COMPAT: a node the client configured otherwise keeps its configuration.
        if (!(err instanceof StanzaError) || err.app?.getName() !== "precondition-not-met") throw err;
        await pep.publish(owner, node, id, payload);
      }
    };

    const toPep = async (owner: string, photo: Avatar | null): Promise<void> => {
      const current = await currentMetadata(owner);
      if ((current?.hash ?? "") === (photo?.hash ?? "")) return;
      if (!photo) {
        // XEP-0084 §4.2: empty metadata disables the avatar.
        await publish(owner, NS_AVATAR_METADATA, "current", xml("metadata", { xmlns: NS_AVATAR_METADATA }));
        return;
      }
      await publish(owner, NS_AVATAR_DATA, photo.hash, xml("data", { xmlns: NS_AVATAR_DATA }, photo.base64));
      await publish(owner, NS_AVATAR_METADATA, photo.hash, xml("metadata", { xmlns: NS_AVATAR_METADATA },
        xml("info", { id: photo.hash, bytes: String(photo.bytes), type: photo.type })));
    };

    /** The avatar the metadata node names now (its newest item), or null when none or disabled. */
    const currentMetadata = async (owner: string): Promise<{ hash: string; type: string } | null> => {
      const items = await pep.items(owner, NS_AVATAR_METADATA);
      const info = items?.[items.length - 1]?.payload.getChild("info");
      return info?.attrs.id ? { hash: info.attrs.id, type: info.attrs.type ?? "image/png" } : null;
    };

    // XEP-0084 → vCard (XEP-0398 §3): when the metadata changes, the vCard's PHOTO follows.
    api.onUnload(pep.onChange((owner, node) => {
      if (node !== NS_AVATAR_METADATA) return;
      void toVcard(owner).catch((err) => api.log.warn({ err }, "converting a PEP avatar to the vCard failed"));
    }));

    const toVcard = async (owner: string): Promise<void> => {
      const meta = await currentMetadata(owner);
      const card = await vcards.get(owner);
      const had = photoOf(card);
      if ((had?.hash ?? "") === (meta?.hash ?? "")) return;
      let photo: Element | null = null;
      if (meta) {
        const data = (await pep.items(owner, NS_AVATAR_DATA))?.find((i) => i.id === meta.hash)?.payload.getText().replace(/\s+/g, "");
        // Only a data item whose bytes match the hash the metadata claims becomes the vCard photo.
        if (!data || createHash("sha1").update(Buffer.from(data, "base64")).digest("hex") !== meta.hash) return;
        photo = xml("PHOTO", null, xml("TYPE", null, meta.type), xml("BINVAL", null, data));
      }
      const next = xml("vCard", { xmlns: NS.vcard });
      for (const c of card?.children ?? []) if (typeof c === "string" || c.name !== "PHOTO") next.cnode(c);
      if (photo) next.cnode(photo);
      hashes.set(owner, meta?.hash ?? "");
      await vcards.set(owner, next.getChildElements().length === 0 ? null : next);
      rebroadcast(owner);
    };
  },
});
