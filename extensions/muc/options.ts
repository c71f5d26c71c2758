// `modules.muc` options, validated at start.
import { tryParseJid } from "../../src/jid/jid.js";

export interface MucOptions {
  /** The service domain; "{host}" stands for each served host. Default "conference.{host}". */
  domain: string;
  /** Rooms a user may have created and that still exist; 0: no limit. Service admins are exempt. */
  maxRoomsPerUser: number;
  /** History length of a new room (muc#maxhistoryfetch). */
  defaultHistory: number;
  /** The most history messages any room sends on join. */
  maxHistory: number;
  /** Who may create rooms: anyone on the served hosts, or only the service admins. */
  roomCreation: "any" | "admins";
  /** Bare JIDs of the service admins. */
  admins: string[];
}

const KEYS = new Set(["domain", "maxRoomsPerUser", "defaultHistory", "maxHistory", "roomCreation", "admins"]);

function count(o: Record<string, unknown>, key: string, def: number): number {
  const v = o[key];
  if (v === undefined) return def;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new Error(`${key} must be a non-negative integer`);
  return v;
}

export function parseMucOptions(raw: unknown): MucOptions {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error("expected a mapping");
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) throw new Error(`unknown option ${k} (known: ${[...KEYS].join(", ")})`);
  const domain = o.domain ?? "conference.{host}";
  if (typeof domain !== "string" || domain === "") throw new Error("domain must be a non-empty string");
  if (!tryParseJid(domain.replace("{host}", "example.org"))?.isBare || domain.includes("@")) throw new Error(`domain ${domain} is not a valid domain`);
  const maxHistory = count(o, "maxHistory", 100);
  const defaultHistory = count(o, "defaultHistory", Math.min(20, maxHistory));
  if (defaultHistory > maxHistory) throw new Error("defaultHistory must not exceed maxHistory");
  const roomCreation = o.roomCreation ?? "any";
  if (roomCreation !== "any" && roomCreation !== "admins") throw new Error('roomCreation must be "any" or "admins"');
  const admins = o.admins ?? [];
  if (!Array.isArray(admins)) throw new Error("admins must be a list of bare JIDs");
  const adminJids = admins.map((a) => {
    const j = typeof a === "string" ? tryParseJid(a) : null;
    if (!j || !j.isBare || !j.local) throw new Error(`admins: ${String(a)} is not a bare JID`);
    return j.toString();
  });
  return { domain, maxRoomsPerUser: count(o, "maxRoomsPerUser", 0), defaultHistory, maxHistory, roomCreation, admins: adminJids };
}
