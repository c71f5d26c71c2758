// XEP-0045 §4.2 room anonymity (muc#roomconfig_whois): who sees occupants' real JIDs. Semi-anonymous
// rooms show them to moderators, non-anonymous rooms to everyone (status 100 on entering, §7.2.3).
// "none" keeps them from everyone (the old fully-anonymous room, status 174).
import type { MucService } from "../service.js";
import type { Whois } from "../room.js";
import { oneOf } from "../config-fields.js";

const WHOIS: readonly Whois[] = ["moderators", "anyone", "none"];
/** XEP-0045 §10.2.1: status codes announcing the new anonymity. */
const CHANGE_CODE: Record<Whois, string> = { anyone: "172", moderators: "173", none: "174" };

export function anonymity(muc: MucService): void {
  muc.addConfigField({
    var: "muc#roomconfig_whois", type: "list-single", label: "Who may discover real JIDs?",
    options: [{ value: "moderators", label: "Moderators only" }, { value: "anyone", label: "Anyone" }, { value: "none", label: "Nobody" }],
    read: (c) => [c.whois],
    write: (c, v) => { c.whois = oneOf(v[0], WHOIS, "muc#roomconfig_whois"); },
  });
  muc.bus.fold("room-jid-visible", (_acc, { room, receiverRole }) =>
    room.config.whois === "anyone" || (room.config.whois === "moderators" && receiverRole === "moderator"));
  muc.bus.fold("room-self-codes", (codes, { room }) => {
    if (room.config.whois === "anyone") codes.push("100");
    return codes;
  });
  muc.bus.fold("room-config-codes", (codes, { before, after }) => {
    if (before.whois !== after.whois) codes.push(CHANGE_CODE[after.whois]);
    return codes;
  });
  muc.bus.fold("room-disco-features", (features, { room }) => {
    features.push(room.config.whois === "anyone" ? "muc_nonanonymous" : room.config.whois === "moderators" ? "muc_semianonymous" : "muc_fullyanonymous");
    return features;
  });
}

