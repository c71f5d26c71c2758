// The operations of the server API, one table: method, path (the OpenAPI path template under /api/v1),
// scope, handler. schemas/openapi/hearth-api.yaml documents exactly these (a test compares both ways).
import { randomBytes, randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { tryParseJid } from "../jid/jid.js";
import { deviceTokenKey, type DeviceTokenRecord } from "../auth/tokens.js";
import { AccountError } from "../auth/accounts.js";
import type { ModuleApi } from "../modules/module.js";
import { StanzaError } from "../xml/stanza.js";
import { MobileSession } from "../mobile/session.js";
import { KickReason, Platform } from "../mobile/schema.js";
import { ApiError, field, invalid, notFound } from "./http.js";
import { ApiActor } from "./actor.js";
import type { Scope } from "./auth.js";

export interface Reply { status: number; body?: unknown }

export interface RouteContext {
  params: Record<string, string>;
  /** The request body as a JSON object (read on first use, bounded by api.maxBodyBytes). */
  body(): Promise<Record<string, unknown>>;
  req: IncomingMessage;
}

export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** OpenAPI path template relative to /api/v1 ("/users/{user}"). */
  path: string;
  scope: Scope;
  handle(c: RouteContext): Promise<Reply>;
}

const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_BODY_CHARS = 10_000;
const MAX_MEMBERS = 1000;
const DEFAULT_TOKEN_TTL = 30 * 86_400;
const MAX_TOKEN_TTL = 365 * 86_400;
const PLATFORMS: Record<string, number> = Object.fromEntries(Object.entries(Platform).map(([k, v]) => [k.toLowerCase(), v]));

export function apiRoutes(api: ModuleApi<unknown>): Route[] {
  const hosts = api.hosts;

  /** A local account named by its username (on the first host) or its bare JID; 404 when it does not exist. */
  const account = async (text: string, what = "user"): Promise<{ user: string; host: string; bare: string }> => {
    const name = parseAccount(text, what);
    if (!(await api.accounts.exists(name.host, name.user))) throw notFound(`no user ${name.bare}`);
    return name;
  };
  const parseAccount = (text: string, what: string): { user: string; host: string; bare: string } => {
    const j = tryParseJid(text.includes("@") ? text : `${text}@${hosts[0]}`);
    if (!j || j.local === "" || j.resource !== "") throw invalid(`${what}: a username or a bare JID is required`);
    if (!hosts.includes(j.domain)) throw invalid(`${what}: ${j.domain} is not served here`);
    return { user: j.local, host: j.domain, bare: j.toString() };
  };

  const groups = () => {
    const g = api.useOptional("mobileGroups");
    const domain = g?.domain() ?? null;
    if (!g || domain === null) throw new ApiError("unavailable", "this server runs no group service (the mobile and muc modules)");
    return { g, domain };
  };
  const groupOf = async (text: string) => {
    const { g, domain } = groups();
    const j = tryParseJid(text.includes("@") ? text : `${text}@${domain}`);
    if (!j || j.local === "" || j.resource !== "" || j.domain !== domain) throw invalid(`group: a group JID on ${domain} is required`);
    const room = j.toString();
    const entry = await g.directoryEntry(room);
    if (!entry) throw notFound(`no group ${room}`);
    const owner = Object.entries(entry.members).find(([, r]) => r === "owner")?.[0];
    if (!owner) throw new ApiError("conflict", `the group ${room} has no owner`);
    return { g, room, entry, owner };
  };
  /** An affiliation change in the room, made by its owner (XEP-0045 §9.3, §9.4). */
  const setAffiliation = async (owner: string, room: string, jids: string[], affiliation: "member" | "none", by?: ApiActor) => {
    if (jids.length === 0) return;
    const o = tryParseJid(owner)!;
    const actor = by ?? new ApiActor(api.router, api.sessions, o.local, o.domain);
    try {
      const answer = await actor.iq(xml("iq", { type: "set", to: room },
        xml("query", { xmlns: NS.mucAdmin }, ...jids.map((jid) => xml("item", { jid, affiliation })))));
      if (answer.attrs.type === "error") throw fromStanzaError(answer, "the group refused the change");
    } finally {
      if (!by) actor.unbind();
    }
  };

  return [
    {
      method: "POST", path: "/users", scope: "users",
      async handle(c) {
        const body = await c.body();
        field.only(body, ["username", "password"]);
        const name = parseAccount(field.string(body, "username", { max: 1023 }), "username");
        const password = field.string(body, "password", { max: 1024 });
        try {
          const user = await api.accounts.create(name.host, name.user, password);
          return { status: 201, body: { jid: `${user}@${name.host}` } };
        } catch (err) {
          throw accountError(err);
        }
      },
    },
    {
      method: "DELETE", path: "/users/{user}", scope: "users",
      async handle(c) {
        const name = await account(c.params.user!);
        try {
          await api.accounts.delete(name.host, name.user);
        } catch (err) {
          throw accountError(err);
        }
        return { status: 204 };
      },
    },
    {
      method: "GET", path: "/users/{user}/presence", scope: "presence",
      async handle(c) {
        const name = await account(c.params.user!);
        // Not the API's own short-lived actors (also when another node of a cluster holds one).
        const resources = api.sessions.resources(name.bare).filter((s) => s.protocol !== ApiActor.PROTOCOL).map((s) => ({
          resource: s.jid?.resource ?? "",
          transport: s.protocol,
          available: s.presence !== null,
          show: s.presence?.getChildText("show") ?? (s.presence ? "online" : null),
          status: s.presence?.getChildText("status") ?? null,
          priority: s.priority,
        }));
        return { status: 200, body: { jid: name.bare, online: resources.some((r) => r.available), resources } };
      },
    },
    {
      method: "POST", path: "/users/{user}/tokens", scope: "tokens",
      async handle(c) {
        const name = await account(c.params.user!);
        const body = await c.body();
        field.only(body, ["deviceId", "platform", "ttlSeconds"]);
        const device = field.string(body, "deviceId", { max: 64, pattern: DEVICE_ID, what: "1-64 characters of A-Z a-z 0-9 . _ - are required" });
        const platformName = field.optionalString(body, "platform", { max: 32 }) ?? "unspecified";
        const platform = PLATFORMS[platformName];
        if (platform === undefined) throw invalid(`platform: one of ${Object.keys(PLATFORMS).join(", ")}`);
        const ttl = field.optionalInteger(body, "ttlSeconds", 60, MAX_TOKEN_TTL) ?? DEFAULT_TOKEN_TTL;
        // The same form and record as a token a device asks for (src/mobile/requests/session.ts issueToken).
        const token = `hm1.${randomBytes(32).toString("base64url")}`;
        const now = Date.now();
        const record: DeviceTokenRecord = { kind: "device", device, platform, created: now, expires: now + ttl * 1000 };
        await api.accounts.login.tokens.put(name.bare, deviceTokenKey(token), record);
        return { status: 201, body: { token, deviceId: device, expiresAt: record.expires } };
      },
    },
    {
      method: "GET", path: "/users/{user}/tokens", scope: "tokens",
      async handle(c) {
        const name = await account(c.params.user!);
        const names = Object.fromEntries(Object.entries(PLATFORMS).map(([k, v]) => [v, k]));
        const now = Date.now();
        const tokens = (await api.accounts.login.tokens.list(name.bare)).flatMap((t) => t.record.kind !== "device" ? [] : [{
          deviceId: t.record.device, platform: names[t.record.platform] ?? "unspecified",
          createdAt: t.record.created, expiresAt: t.record.expires, expired: t.record.expires < now,
        }]).sort((a, b) => a.createdAt - b.createdAt);
        return { status: 200, body: { jid: name.bare, tokens } };
      },
    },
    {
      method: "DELETE", path: "/users/{user}/tokens/{deviceId}", scope: "tokens",
      async handle(c) {
        const name = await account(c.params.user!);
        const device = c.params.deviceId!;
        if (!DEVICE_ID.test(device)) throw invalid("deviceId: 1-64 characters of A-Z a-z 0-9 . _ - are required");
        const { tokens } = api.accounts.login;
        const revoked = new Set<string>();
        for (const t of await tokens.list(name.bare)) {
          if (t.record.kind === "device" && t.record.device === device && (await tokens.revoke(name.bare, t.key))) revoked.add(t.key);
        }
        // A device logged in with a revoked token is logged out, as when the user revokes it (mobile RevokeToken).
        for (const s of api.sessions.resources(name.bare)) {
          if (s instanceof MobileSession && s.tokenHash !== null && revoked.has(s.tokenHash)) {
            s.kick(KickReason.TOKEN_REVOKED, "the token this device logged in with was revoked");
          }
        }
        return { status: 200, body: { revoked: revoked.size } };
      },
    },
    {
      method: "POST", path: "/messages", scope: "messages",
      async handle(c) {
        const body = await c.body();
        field.only(body, ["from", "to", "body", "type", "id"]);
        const fromText = field.optionalString(body, "from", { max: 3071 });
        const toText = field.string(body, "to", { max: 3071 });
        const text = field.string(body, "body", { max: MAX_BODY_CHARS });
        const type = field.optionalString(body, "type", { max: 16 }) ?? "chat";
        if (type !== "chat" && type !== "normal") throw invalid('type: "chat" or "normal"');
        const id = field.optionalString(body, "id", { max: 64 }) ?? randomUUID();
        const to = tryParseJid(toText.includes("@") ? toText : `${toText}@${hosts[0]}`);
        if (!to || to.local === "") throw invalid("to: a username or a JID is required");
        if (hosts.includes(to.domain) && !(await api.accounts.exists(to.domain, to.local))) throw notFound(`no user ${to.bareString()}`);
        const stanza = xml("message", { type, id, to: to.toString() }, xml("body", null, text), xml("origin-id", { xmlns: NS.sid, id }));
        if (fromText === undefined) {
          // A system notification: from the server's domain, archived and delivered (or kept offline) like any message.
          if (!hosts.includes(to.domain)) throw invalid("to: a system notification goes to a local user");
          stanza.attrs.from = to.domain;
          const r = await api.router.route(stanza);
          if (r instanceof StanzaError) throw deliveryError(r);
          const meta = r !== null && typeof r === "object" && "recipient" in r ? r.recipient : null;
          return { status: 202, body: { id, from: to.domain, to: to.toString(), stanzaId: meta?.stanzaId ?? null } };
        }
        const from = await account(fromText, "from");
        const actor = new ApiActor(api.router, api.sessions, from.user, from.host);
        try {
          const r = await api.router.submit(actor, stanza);
          if (r instanceof StanzaError) throw deliveryError(r);
          return { status: 202, body: { id, from: from.bare, to: to.toString(), stanzaId: r.sender?.stanzaId ?? null, duplicate: r.duplicate } };
        } finally {
          actor.unbind();
        }
      },
    },
    {
      method: "POST", path: "/groups", scope: "groups",
      async handle(c) {
        const body = await c.body();
        field.only(body, ["owner", "name", "members"]);
        const { g, domain } = groups();
        const owner = await account(field.string(body, "owner", { max: 3071 }), "owner");
        const name = field.string(body, "name", { max: 256 }).trim();
        if (name === "") throw invalid("name: 1-256 characters are required");
        const memberNames = field.optionalStringList(body, "members", MAX_MEMBERS);
        const members: string[] = [];
        for (const [i, m] of memberNames.entries()) {
          const a = await account(m, `members[${i}]`);
          if (a.bare !== owner.bare && !members.includes(a.bare)) members.push(a.bare);
        }
        const room = `g-${randomBytes(8).toString("hex")}@${domain}`;
        // XEP-0045 §10.1: the owner's first presence creates the room; the configuration form unlocks it.
        const actor = new ApiActor(api.router, api.sessions, owner.user, owner.host);
        actor.bind();
        try {
          const joined = actor.expect((el) => el.name === "presence" && tryParseJid(el.attrs.from)?.bareString() === room);
          await actor.route(xml("presence", { to: `${room}/${owner.user}` }, xml("x", { xmlns: NS.muc }, xml("history", { maxstanzas: "0" }))));
          const presence = await joined;
          if (presence.attrs.type === "error") throw fromStanzaError(presence, "the group service refused to create the room");
          const f = (v: string, value: string) => xml("field", { var: v }, xml("value", null, value));
          const configured = await actor.iq(xml("iq", { type: "set", to: room }, xml("query", { xmlns: NS.mucOwner },
            xml("x", { xmlns: NS.dataForms, type: "submit" },
              f("FORM_TYPE", NS.mucRoomConfig), f("muc#roomconfig_roomname", name), f("muc#roomconfig_persistentroom", "1"),
              f("muc#roomconfig_membersonly", "1"), f("muc#roomconfig_publicroom", "0"), f("muc#roomconfig_whois", "anyone")))));
          if (configured.attrs.type === "error") throw fromStanzaError(configured, "the group service refused the configuration");
          await g.adoptGroup(room, name, owner.bare);
          if (members.length > 0) {
            // In the directory before the invitations arrive, so that they are no news to the members' devices.
            for (const m of members) await g.memberAdded(room, m, owner.bare);
            // Mediated invitations (XEP-0045 §7.8.2) make the invitees members of the members-only room,
            // and tell XMPP members about it as a room invitation.
            await actor.route(xml("message", { to: room }, xml("x", { xmlns: NS.mucUser }, ...members.map((to) => xml("invite", { to })))));
          }
          // The member affiliations once more, explicitly (XEP-0045 §9.3): the invitations' errors come back
          // as messages nobody reads here, the iq's as an answer that fails this request.
          await setAffiliation(owner.bare, room, members, "member", actor);
          await actor.route(xml("presence", { to: `${room}/${owner.user}`, type: "unavailable" }));
        } finally {
          actor.unbind();
        }
        return { status: 201, body: { jid: room, name, owner: owner.bare, members: [owner.bare, ...members] } };
      },
    },
    {
      method: "GET", path: "/groups/{group}", scope: "groups",
      async handle(c) {
        const { room, entry } = await groupOf(c.params.group!);
        return { status: 200, body: { jid: room, name: entry.name, members: Object.entries(entry.members).sort().map(([jid, role]) => ({ jid, role })) } };
      },
    },
    {
      method: "PUT", path: "/groups/{group}/members/{user}", scope: "groups",
      async handle(c) {
        const { g, room, entry, owner } = await groupOf(c.params.group!);
        const member = await account(c.params.user!);
        if (entry.members[member.bare] !== undefined) return { status: 204 };
        await setAffiliation(owner, room, [member.bare], "member");
        await g.memberAdded(room, member.bare, owner);
        return { status: 201 };
      },
    },
    {
      method: "DELETE", path: "/groups/{group}/members/{user}", scope: "groups",
      async handle(c) {
        const { g, room, entry, owner } = await groupOf(c.params.group!);
        const member = parseAccount(c.params.user!, "user");
        const role = entry.members[member.bare];
        if (role === undefined) throw notFound(`${member.bare} is not a member of ${room}`);
        if (role === "owner") throw new ApiError("conflict", "the owner cannot be removed from the group");
        await setAffiliation(owner, room, [member.bare], "none");
        await g.memberRemoved(room, member.bare, owner);
        return { status: 204 };
      },
    },
  ];
}

function accountError(err: unknown): unknown {
  if (!(err instanceof AccountError)) return err;
  switch (err.code) {
    case "exists": return new ApiError("conflict", err.message);
    case "not-found": return notFound(err.message);
    default: return invalid(err.message);
  }
}

/** A message the router refused (the recipient's offline storage is full, a block, …). */
function deliveryError(err: StanzaError): ApiError {
  const text = err.text ? `: ${err.text}` : "";
  if (err.condition === "service-unavailable" || err.condition === "resource-constraint") return new ApiError("unavailable", `not delivered (${err.condition})${text}`);
  if (err.condition === "item-not-found" || err.condition === "recipient-unavailable") return notFound(`not delivered (${err.condition})${text}`);
  return new ApiError("forbidden", `not delivered (${err.condition})${text}`);
}

function fromStanzaError(el: Element, what: string): ApiError {
  const e = el.getChild("error");
  const condition = e?.children.find((c): c is Element => typeof c !== "string" && c.name !== "text")?.name ?? "undefined-condition";
  const text = e?.getChildText("text");
  const message = `${what} (${condition}${text ? `: ${text}` : ""})`;
  if (condition === "forbidden" || condition === "not-allowed") return new ApiError("forbidden", message);
  if (condition === "conflict") return new ApiError("conflict", message);
  if (condition === "item-not-found") return notFound(message);
  return new ApiError("unavailable", message);
}
