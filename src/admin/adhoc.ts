// XEP-0050 ad-hoc commands on the server's domain, carrying the XEP-0133 service administration commands
// (node names http://jabber.org/protocol/admin#…). Every command is two steps: `execute` answers a XEP-0004
// form (status executing), the submitted form completes it; the read-only counts complete at once. Only
// the accounts in admin.accounts see or run them (XEP-0133 §5: forbidden otherwise).
import { randomBytes } from "node:crypto";
import type { ModuleApi } from "../modules/module.js";
import type { StanzaEvent } from "../events/hooks.js";
import { NS } from "../xml/ns.js";
import { xml, type Element } from "../xml/element.js";
import { StanzaError } from "../xml/stanza.js";
import { AdminError, type AdminService } from "./service.js";

export const NS_COMMANDS = "http://jabber.org/protocol/commands";
export const NS_ADMIN = "http://jabber.org/protocol/admin";

type Field = { var: string; type: string; label?: string; required?: boolean; value?: string | string[]; options?: string[] };
type Values = Map<string, string[]>;

interface Command {
  name: string;
  /** The form of the first step; null: the command completes at once. */
  form: Field[] | null;
  /** Runs the submitted form; returns a note and, for reports, result fields. */
  run(values: Values, host: string): Promise<{ note: string; result?: Field[] }>;
}

const MAX_SESSIONS = 200;
const SESSION_TTL_MS = 10 * 60_000;

const jids = (values: Values, name: string): string[] => {
  const list = (values.get(name) ?? []).flatMap((v) => v.split(/\s+/)).filter((v) => v !== "");
  if (list.length === 0) throw new StanzaError("bad-request", `the field ${name} is required`);
  if (list.length > 100) throw new StanzaError("bad-request", `at most 100 JIDs in ${name}`);
  return list;
};
const one = (values: Values, name: string, required = true): string => {
  const v = values.get(name)?.join("\n") ?? "";
  if (required && v === "") throw new StanzaError("bad-request", `the field ${name} is required`);
  return v;
};

export function adminCommands(admin: AdminService): Map<string, Command> {
  const each = async (list: string[], fn: (jid: string) => Promise<unknown> | unknown): Promise<string> => {
    const failed: string[] = [];
    for (const j of list) {
      try { await fn(j); } catch (err) {
        if (!(err instanceof AdminError)) throw err;
        failed.push(`${j}: ${err.message}`);
      }
    }
    if (failed.length === list.length) throw new StanzaError(failed.length === 1 && /no account|no session/.test(failed[0]!) ? "item-not-found" : "bad-request", failed.join("; "));
    return failed.length === 0 ? "" : ` Failed: ${failed.join("; ")}`;
  };
  const maxItems: Field = { var: "max_items", type: "list-single", label: "Maximum number of items to report", value: "100", options: ["25", "50", "75", "100", "150", "200", "none"] };
  const limitOf = (v: Values): number => {
    const max = one(v, "max_items", false);
    const limit = max === "" || max === "none" ? Infinity : Number(max);
    if (!(limit > 0)) throw new StanzaError("bad-request", "max_items must be a number or none");
    return limit;
  };
  /** A report of one number of the host's counts, completed at once. */
  const count = (name: string, key: "online" | "accounts" | "disabled", field: string, label: string): Command => ({
    name, form: null,
    async run(_v, host) {
      const n = (await admin.hostCounts()).find((c) => c.host === host)?.[key] ?? 0;
      return { note: "", result: [{ var: field, type: "text-single", label, value: String(n) }] };
    },
  });
  const accountjids: Field = { var: "accountjids", type: "jid-multi", label: "The Jabber ID(s)", required: true };
  const accountjid: Field = { var: "accountjid", type: "jid-single", label: "The Jabber ID", required: true };
  const commands = new Map<string, Command>([
    ["add-user", {
      name: "Add a User",
      form: [accountjid, { var: "password", type: "text-private", label: "The password for this account", required: true },
        { var: "password-verify", type: "text-private", label: "Retype password", required: true }],
      async run(v) {
        const password = one(v, "password");
        if (v.has("password-verify") && one(v, "password-verify", false) !== password) throw new StanzaError("bad-request", "the passwords differ");
        const created = await admin.addUser(one(v, "accountjid"), password);
        return { note: `${created} was created.` };
      },
    }],
    ["delete-user", {
      name: "Delete a User", form: [accountjids],
      async run(v) { const list = jids(v, "accountjids"); const failed = await each(list, (j) => admin.deleteUser(j)); return { note: `Deleted ${list.join(", ")}.${failed}` }; },
    }],
    ["disable-user", {
      name: "Disable a User", form: [accountjids],
      async run(v) { const list = jids(v, "accountjids"); const failed = await each(list, (j) => admin.disable(j)); return { note: `Disabled ${list.join(", ")}.${failed}` }; },
    }],
    ["reenable-user", {
      name: "Re-Enable a User", form: [accountjids],
      async run(v) { const list = jids(v, "accountjids"); const failed = await each(list, (j) => admin.enable(j)); return { note: `Re-enabled ${list.join(", ")}.${failed}` }; },
    }],
    ["end-user-session", {
      name: "End User Session", form: [accountjids],
      async run(v) { const list = jids(v, "accountjids"); const failed = await each(list, (j) => admin.kick(j)); return { note: `Ended the sessions of ${list.join(", ")}.${failed}` }; },
    }],
    ["change-user-password", {
      name: "Change User Password",
      form: [accountjid, { var: "password", type: "text-private", label: "The password for this account", required: true }],
      async run(v) {
        const j = one(v, "accountjid");
        await each([j], (x) => admin.resetPassword(x, one(v, "password")));
        return { note: `The password of ${j} was changed.` };
      },
    }],
    ["announce", {
      name: "Send Announcement to Online Users",
      form: [{ var: "subject", type: "text-single", label: "Subject" }, { var: "announcement", type: "text-multi", label: "Announcement", required: true }],
      async run(v, host) {
        const n = await each([host], (h) => admin.announce(h, one(v, "announcement"), one(v, "subject", false) || undefined));
        return { note: `The announcement was sent to the online users of ${host}.${n}` };
      },
    }],
    ["get-online-users-num", count("Get Number of Online Users", "online", "onlineusersnum", "The number of online users")],
    ["get-registered-users-num", count("Get Number of Registered Users", "accounts", "registeredusersnum", "The number of registered users")],
    ["get-disabled-users-num", count("Get Number of Disabled Users", "disabled", "disabledusersnum", "The number of disabled users")],
    ["get-disabled-users-list", {
      name: "Get List of Disabled Users", form: [maxItems],
      async run(v, host) {
        const users = (await admin.accounts.login.disabledAccounts(host)).map((u) => `${u}@${host}`);
        return { note: "", result: [{ var: "disableduserjids", type: "jid-multi", label: "The list of all disabled users", value: users.slice(0, limitOf(v)) }] };
      },
    }],
    ["get-online-users-list", {
      name: "Get List of Online Users",
      form: [maxItems],
      async run(v, host) {
        const limit = limitOf(v);
        const bare = [...new Set(admin.sessions().filter((s) => s.jid.endsWith(`@${host}`) || s.jid.includes(`@${host}/`)).map((s) => s.jid.split("/")[0]!))];
        return { note: "", result: [{ var: "onlineuserjids", type: "jid-multi", label: "The list of all online users", value: bare.slice(0, limit) }] };
      },
    }],
  ]);
  return commands;
}

function form(type: "form" | "result", fields: Field[], title?: string): Element {
  const x = xml("x", { xmlns: NS.dataForms, type }, title ? xml("title", null, title) : null,
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", null, NS_ADMIN)));
  for (const f of fields) {
    const values = f.value === undefined ? [] : Array.isArray(f.value) ? f.value : [f.value];
    x.cnode(xml("field", { var: f.var, type: f.type, label: f.label },
      f.required ? xml("required") : null,
      ...values.map((v) => xml("value", null, v)),
      ...(f.options ?? []).map((o) => xml("option", { label: o }, xml("value", null, o)))));
  }
  return x;
}

function formValues(x: Element | undefined): Values {
  const out: Values = new Map();
  for (const f of x?.getChildren("field") ?? []) {
    const name = f.attrs.var;
    if (typeof name === "string") out.set(name, f.getChildren("value").map((v) => v.getText()));
  }
  return out;
}

const commandError = (condition: "bad-request", app: string, text: string) => new StanzaError(condition, text, undefined, xml(app, { xmlns: NS_COMMANDS }));

/** Mounts the commands on every served host: disco items/info of the commands node, and execution. */
export function mountAdhoc(api: ModuleApi<unknown>, admin: AdminService): void {
  const commands = adminCommands(admin);
  const sessions = new Map<string, { node: string; owner: string; at: number }>();
  const nodeOf = (name: string) => `${NS_ADMIN}#${name}`;
  const byNode = new Map([...commands].map(([name, c]) => [nodeOf(name), c]));

  api.addFeature(NS_COMMANDS);
  api.fold("disco-items", (acc, ctx) => {
    if (ctx.to.local || ctx.node !== NS_COMMANDS) return acc;
    // XEP-0050 §2.2: the commands this requester may run; none for a non-admin.
    if (!admin.isAdmin(ctx.from)) return acc;
    for (const [name, c] of commands) acc.push(xml("item", { jid: ctx.host, node: nodeOf(name), name: c.name }));
    return acc;
  });
  api.fold("disco-info", (acc, ctx) => {
    if (ctx.to.local || ctx.node === null) return acc;
    if (ctx.node === NS_COMMANDS) {
      acc.push(xml("identity", { category: "automation", type: "command-list", name: "Service administration" }));
      return acc;
    }
    const c = byNode.get(ctx.node);
    if (!c || !admin.isAdmin(ctx.from)) return acc;
    acc.push(xml("identity", { category: "automation", type: "command-node", name: c.name }), xml("feature", { var: NS_COMMANDS }), xml("feature", { var: NS.dataForms }));
    return acc;
  });

  const expire = () => {
    const now = Date.now();
    for (const [id, s] of sessions) if (s.at + SESSION_TTL_MS < now) sessions.delete(id);
  };

  api.onIq("set", "host", NS_COMMANDS, "command", async (ev: StanzaEvent) => {
    const el = ev.stanza.getChild("command", NS_COMMANDS)!;
    const node = el.attrs.node;
    const command = typeof node === "string" ? byNode.get(node) : undefined;
    if (!command || typeof node !== "string") throw new StanzaError("item-not-found", "no such command");
    if (!admin.isAdmin(ev.from)) {
      api.log.info({ from: ev.from.toString(), node }, "admin command refused: not an admin");
      throw new StanzaError("forbidden", "only the server's administrators may run this command");
    }
    const action = el.attrs.action ?? "execute";
    if (!["execute", "complete", "cancel", "next", "prev"].includes(action)) throw commandError("bad-request", "malformed-action", `unknown action ${action}`);
    const host = ev.to.domain;
    const sid = el.attrs.sessionid;
    const answer = (status: string, sessionid: string, ...children: Array<Element | null>) =>
      xml("command", { xmlns: NS_COMMANDS, node, sessionid, status }, ...children);
    expire();
    if (sid === undefined) {
      if (action !== "execute") throw commandError("bad-request", "malformed-action", `${action} needs a session`);
      const sessionid = randomBytes(9).toString("base64url");
      if (command.form === null) {
        const done = await command.run(new Map(), host);
        return answer("completed", sessionid, done.result ? form("result", done.result) : null);
      }
      if (sessions.size >= MAX_SESSIONS) throw new StanzaError("resource-constraint", "too many open command sessions");
      sessions.set(sessionid, { node, owner: ev.from.toString(), at: Date.now() });
      return answer("executing", sessionid, xml("actions", { execute: "complete" }, xml("complete")), form("form", command.form, command.name));
    }
    const session = sessions.get(sid);
    // XEP-0050 §4.6: a session of another command or another requester is a bad session id.
    if (!session || session.node !== node || session.owner !== ev.from.toString()) throw commandError("bad-request", "bad-sessionid", "unknown or expired session");
    sessions.delete(sid);
    if (action === "cancel") return answer("canceled", sid);
    if (action === "prev" || action === "next") throw commandError("bad-request", "bad-action", `${action} is not offered by this command`);
    const x = el.getChild("x", NS.dataForms);
    if (!x || x.attrs.type !== "submit") throw new StanzaError("bad-request", "a submitted data form is required");
    try {
      const done = await command.run(formValues(x), host);
      api.log.info({ by: ev.from.bareString(), node }, "admin command run");
      return answer("completed", sid, done.note ? xml("note", { type: "info" }, done.note) : null, done.result ? form("result", done.result) : null);
    } catch (err) {
      if (err instanceof AdminError) throw new StanzaError(err.code === "not-found" ? "item-not-found" : err.code === "forbidden" ? "forbidden" : "bad-request", err.message);
      throw err;
    }
  });
}
