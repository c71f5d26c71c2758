// XEP-0045 §10.1-§10.2 room configuration by owners with the muc#roomconfig data form: instant rooms
// (an empty submission), reserved rooms (the form), cancel, and changes announced with status 104
// (plus the privacy codes other features add, §10.2.1). Each setting's field comes from its feature.
import { xml } from "../../../src/xml/element.js";
import { NS } from "../../../src/xml/ns.js";
import { StanzaError } from "../../../src/xml/stanza.js";
import { booleanField, textField } from "../config-fields.js";
import { formElement, formValues } from "../forms.js";
import type { Room, RoomConfig } from "../room.js";
import type { MucService } from "../service.js";

export function ownerConfig(muc: MucService): void {
  muc.addConfigField(textField("muc#roomconfig_roomname", "Name", "name", "text-single", 256));
  muc.addConfigField(textField("muc#roomconfig_roomdesc", "Description", "description", "text-single", 4096));
  muc.addConfigField(textField("muc#roomconfig_lang", "Language of discussion", "language", "text-single", 32));
  muc.addConfigField(booleanField("muc#roomconfig_persistentroom", "Keep the room when the last occupant leaves?", "persistent"));
  muc.addConfigField(booleanField("muc#roomconfig_publicroom", "List the room in the directory?", "public"));

  const requireOwner = (room: Room, bare: string) => {
    // §10.2: only owners configure.
    if (room.affiliationOf(bare) !== "owner") throw new StanzaError("forbidden", "only owners may configure the room");
  };

  muc.onRoomIq("get", NS.mucOwner, "query", (room, ev) => {
    requireOwner(room, ev.from.bareString());
    const fields = muc.configFields.map((f) => ({ var: f.var, type: f.type, label: f.label, options: f.options, values: f.read(room.config) }));
    return xml("query", { xmlns: NS.mucOwner }, formElement("form", NS.mucRoomConfig, fields, `Configuration of ${room.bare}`,
      "Submit an empty form to accept the defaults."));
  });

  muc.onRoomIq("set", NS.mucOwner, "query", async (room, ev) => {
    const x = ev.stanza.getChild("query", NS.mucOwner)?.getChild("x", NS.dataForms);
    if (!x) return; // <destroy/> and others: the next handler
    requireOwner(room, ev.from.bareString());
    const type = x.attrs.type;
    if (type === "cancel") {
      // §10.1.3: cancelling the initial configuration destroys the room.
      if (room.locked) await muc.destroyRoom(room);
      return true;
    }
    if (type !== "submit") throw new StanzaError("bad-request", "expected a submitted form");
    const values = formValues(x);
    const formType = values.get("FORM_TYPE")?.[0];
    if (formType !== undefined && formType !== NS.mucRoomConfig) throw new StanzaError("bad-request", `unexpected FORM_TYPE ${formType}`);
    const next: RoomConfig = { ...room.config };
    for (const f of muc.configFields) {
      const v = values.get(f.var);
      if (v !== undefined) f.write(next, v);
    }
    for (const f of muc.configFields) f.validate?.(next);
    await applyConfig(muc, room, next);
    return true;
  });
}

/** Commits a new configuration: unlocks, persists, announces the change and lets features react. */
export async function applyConfig(muc: MucService, room: Room, next: RoomConfig): Promise<void> {
  const before = room.config;
  const wasLocked = room.locked;
  room.config = next;
  room.locked = false;
  if (next.persistent) await muc.registry.save(room);
  else if (before.persistent) await muc.registry.forget(room);
  const changed = (Object.keys(next) as Array<keyof RoomConfig>).filter((k) => next[k] !== before[k]);
  if (!wasLocked && changed.length > 0) {
    const codes = muc.bus.runFold("room-config-codes", changed.some((k) => k !== "whois") ? ["104"] : [], { room, before, after: next });
    if (codes.length > 0) {
      muc.broadcast(room, xml("message", { from: room.bare, type: "groupchat" }, xml("x", { xmlns: NS.mucUser }, ...codes.map((code) => xml("status", { code })))));
    }
  }
  await muc.bus.notify("room-config-changed", { room, before, after: next });
}
