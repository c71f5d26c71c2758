// XEP-0045 §7.2.5 password-protected rooms: entering needs <password/> in the MUC <x/>.
import { NS } from "../../../src/xml/ns.js";
import { RoomError } from "../events.js";
import { booleanField, textField } from "../config-fields.js";
import { StanzaError } from "../../../src/xml/stanza.js";
import type { MucService } from "../service.js";

export function password(muc: MucService): void {
  muc.addConfigField({
    ...booleanField("muc#roomconfig_passwordprotectedroom", "Password required to enter?", "passwordProtected"),
    validate: (c) => {
      if (c.passwordProtected && c.password === "") throw new StanzaError("not-acceptable", "a password-protected room needs a password");
    },
  });
  muc.addConfigField(textField("muc#roomconfig_roomsecret", "Password", "password", "text-private", 256));
  muc.bus.on("room-pre-join", ({ room, stanza }) => {
    if (!room.config.passwordProtected) return;
    const given = stanza.getChild("x", NS.muc)?.getChildText("password");
    if (given !== room.config.password) return new RoomError("not-authorized", "a password is required to enter this room");
  }, 60);
  muc.bus.fold("room-disco-features", (features, { room }) => {
    features.push(room.config.passwordProtected ? "muc_passwordprotected" : "muc_unsecured");
    return features;
  });
}
