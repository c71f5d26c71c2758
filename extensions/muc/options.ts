// `modules.muc` options, checked when the configuration is loaded.
import { moduleOptions, type OptionsOf } from "../../src/config/schema.js";
import { tryParseJid } from "../../src/jid/jid.js";

/** A domain, where "{host}" stands for each served host. */
function serviceDomain(value: string): string | undefined {
  if (value === "" || value.includes("@")) return undefined;
  return tryParseJid(value.replace("{host}", "example.org"))?.isBare ? value : undefined;
}

function bareJid(value: string): string | undefined {
  const j = tryParseJid(value);
  return j && j.isBare && j.local ? j.toString() : undefined;
}

const count = (def: number | null, description: string) =>
  ({ kind: "integer", min: 0, max: Number.MAX_SAFE_INTEGER, default: def, description }) as const;

export const mucOptions = moduleOptions(
  "Multi-user chat (XEP-0045): one service per served host.",
  {
    domain: {
      kind: "string",
      default: "conference.{host}",
      expect: 'a domain name, where "{host}" stands for each served host',
      accept: serviceDomain,
      description: 'The service domain; "{host}" stands for each served host.',
    },
    maxRoomsPerUser: count(0, "Rooms a user may have created and that still exist; 0: no limit. Service admins are exempt."),
    defaultHistory: {
      ...count(null, "History length of a new room (muc#maxhistoryfetch); null: 20, or maxHistory when that is smaller."),
      nullable: true,
      defaultNote: "min(20, maxHistory)",
    },
    maxHistory: count(100, "The most history messages any room sends on join."),
    roomCreation: {
      kind: "enum",
      values: ["any", "admins"],
      default: "any",
      description: "Who may create rooms: anyone on the served hosts, or only the service admins.",
    },
    admins: {
      kind: "list",
      default: [],
      minItems: 0,
      itemExpect: "a bare JID (user@domain)",
      acceptItem: bareJid,
      description: "Bare JIDs of the service admins.",
    },
  },
  (o) => (o.defaultHistory !== null && o.defaultHistory > o.maxHistory ? { key: "defaultHistory", problem: "must not exceed maxHistory" } : undefined),
);

/** `modules.muc` as written (defaultHistory may be left to its derived default). */
export type MucConfig = OptionsOf<typeof mucOptions>;

/** The options the service works with. */
export type MucOptions = Omit<MucConfig, "defaultHistory"> & { defaultHistory: number };

export function resolveMucOptions(o: MucConfig): MucOptions {
  return { ...o, defaultHistory: o.defaultHistory ?? Math.min(20, o.maxHistory) };
}
