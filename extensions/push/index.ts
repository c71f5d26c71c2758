// XEP-0357 Push Notifications, and the same events for mobile-protocol apps as a signed HTTP webhook
// (the app operator's push gateway, e.g. to FCM/APNs). A message stored for a user none of whose sessions
// can take it now (no resource online, or every one hibernated by XEP-0198) is a push event:
// - each XEP-0357 registration (app server JID + node) of the user gets a pubsub publish with the summary
//   form, at most one per registration per `minIntervalSeconds` (later ones coalesce into one);
// - a user with mobile devices is announced to `webhook.url` (webhook.ts).
// A group chat message is a push event for the users the MUC service names in "groupchat-missed" (a
// mention while hibernated, a members-only room's message for an offline member); same rate limit.
import { moduleOptions, nonEmpty, type OptionsOf } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { tryParseJid, type Jid } from "../../src/jid/jid.js";
import { xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { StanzaError } from "../../src/xml/stanza.js";
import type { DeliveryMeta, Session } from "../../src/sessions/session.js";
import { Webhook } from "./webhook.js";

export const NS_PUSH = "urn:xmpp:push:0";
const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
const PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";
const SUMMARY = "urn:xmpp:push:summary";
/** Registrations one user may keep (one per device and app is the usual number). */
const MAX_REGISTRATIONS = 20;
const MAX_OPTION_BYTES = 2048;
const ANSWER_TIMEOUT_MS = 30_000;

export const pushOptions = moduleOptions("Push notifications: XEP-0357 app servers, and a webhook for mobile-protocol apps.", {
  minIntervalSeconds: {
    kind: "integer", min: 0, max: 3600, default: 5,
    description: "At most one notification per registration (device) in this time; messages meanwhile are counted into the next one.",
  },
  webhook: {
    kind: "section",
    description: "An HTTP endpoint (the app operator's push gateway) told about messages for mobile-protocol users who are offline.",
    fields: {
      url: { kind: "string", nullable: true, default: null, expect: "an http or https URL", accept: httpUrl, description: "POST target (http or https); null: no webhook." },
      secret: {
        kind: "string", nullable: true, default: null, expect: "a non-empty string", accept: nonEmpty, secret: true,
        description: "Shared secret: each request carries `X-Hearth-Signature: sha256=<hex HMAC-SHA256 of the body>`. Required with a url.",
      },
      includeBody: { kind: "boolean", default: false, description: "Whether the JSON carries the message body (it passes through the operator's gateway)." },
      attempts: { kind: "integer", min: 1, max: 20, default: 5, description: "Tries per event before it is logged as a dead letter." },
      backoffMs: { kind: "integer", min: 10, max: 600_000, default: 1000, description: "Wait before the second try; doubled before each later one." },
      timeoutMs: { kind: "integer", min: 100, max: 120_000, default: 10_000, description: "Time one request may take before it counts as failed." },
    },
  },
}, (o) => (o.webhook.url !== null && !o.webhook.secret ? { key: "webhook.secret", problem: "is required when webhook.url is set" } : undefined));

function httpUrl(value: string): string | undefined {
  try {
    const u = new URL(value);
    return u.protocol === "http:" || u.protocol === "https:" ? u.toString() : undefined;
  } catch { return undefined; }
}

export type PushOptions = OptionsOf<typeof pushOptions>;

/** One XEP-0357 registration: where the user's app server wants notifications. */
interface Registration {
  jid: string;
  node: string;
  /** The publish-options form fields the client gave (e.g. the app server's secret), sent back verbatim. */
  options: Array<[string, string]>;
}

/** Mobile sessions bind `mobile-<device id>` (DESIGN.md "Protocol mapping"). */
const MOBILE_PREFIX = "mobile-";

const keyOf = (jid: string, node: string) => `${jid}\n${node}`;

/** Per registration on this node: the rate limit and the count since the last notification. */
interface Pace { lastAt: number; count: number; timer: NodeJS.Timeout | null; sender: string; body: string | null }

export const push = defineModule({
  name: "push",
  xep: [{ spec: "XEP-0357", title: "Push Notifications", version: "0.4.1", status: "complete", note: "summary form; 1:1 messages to users offline or hibernated (XEP-0198); MUC mentions and members-only room messages" }],
  options: pushOptions,
  setup(api) {
    const o = api.options;
    const registrations = api.store.map("push:registrations");
    const webhook = o.webhook.url ? new Webhook(o.webhook as typeof o.webhook & { url: string; secret: string }, api.log) : null;
    /** The mobile-protocol devices of each user (resource → device id), learnt when they bind. */
    const devices = api.store.map("push:mobile-devices");
    /** Per user, per registration (app server JID and node): the rate limit and the count. */
    const paces = new Map<string, Map<string, Pace>>();
    const waiting = new Map<string, { owner: string; key: string; timer: NodeJS.Timeout }>();
    let nextId = 0;
    api.onUnload(() => {
      for (const byReg of paces.values()) for (const p of byReg.values()) if (p.timer) clearTimeout(p.timer);
      for (const w of waiting.values()) clearTimeout(w.timer);
      webhook?.stop();
    });

    api.addFeature(NS_PUSH, "account");

    // XEP-0357 §5: enable, with the app server's JID, a node and optional publish-options.
    api.onIq("set", "self", NS_PUSH, "enable", async (ev) => {
      const el = ev.stanza.getChild("enable", NS_PUSH)!;
      const service = tryParseJid(el.attrs.jid);
      const node = el.attrs.node ?? "";
      if (!service || node === "") throw new StanzaError("bad-request", "enable needs the app server's jid and a node");
      const options: Array<[string, string]> = [];
      const form = el.getChild("x", NS.dataForms);
      if (form) {
        if (formType(form) !== PUBLISH_OPTIONS) throw new StanzaError("bad-request", "the form must be publish-options");
        for (const f of form.getChildren("field")) {
          if (f.attrs.var && f.attrs.var !== "FORM_TYPE") options.push([f.attrs.var, f.getChildText("value") ?? ""]);
        }
        if (JSON.stringify(options).length > MAX_OPTION_BYTES) throw new StanzaError("not-acceptable", "publish-options too large");
      }
      const owner = ev.from.bareString();
      const reg: Registration = { jid: service.toString(), node, options };
      const key = keyOf(reg.jid, node);
      const existing = await registrations.list(owner);
      if (!existing.has(key) && existing.size >= MAX_REGISTRATIONS) throw new StanzaError("resource-constraint", `at most ${MAX_REGISTRATIONS} push registrations`);
      await registrations.set(owner, key, JSON.stringify(reg));
      return true;
    });

    // §6: disable one node of an app server, or all of its nodes.
    api.onIq("set", "self", NS_PUSH, "disable", async (ev) => {
      const el = ev.stanza.getChild("disable", NS_PUSH)!;
      const service = tryParseJid(el.attrs.jid);
      if (!service) throw new StanzaError("bad-request", "disable needs the app server's jid");
      const owner = ev.from.bareString();
      for (const [key, text] of await registrations.list(owner)) {
        const reg = JSON.parse(text) as Registration;
        if (reg.jid === service.toString() && (el.attrs.node === undefined || reg.node === el.attrs.node)) await registrations.delete(owner, key);
      }
      return true;
    });

    // The app server's answers to our publishes (§7: an error disables the registration).
    api.on("iq/bare", (ev) => {
      const id = ev.stanza.attrs.id ?? "";
      const w = waiting.get(id);
      const type = ev.stanza.attrs.type;
      if (!w || (type !== "result" && type !== "error") || w.owner !== ev.to.bareString() || ev.from.toString() !== w.key.split("\n")[0]) return false;
      waiting.delete(id);
      clearTimeout(w.timer);
      if (type === "error") {
        api.log.info({ owner: w.owner, service: ev.from.toString() }, "push: the app server answered with an error; registration disabled");
        void registrations.delete(w.owner, w.key).catch((err: unknown) => api.log.warn({ err }, "push: could not disable a registration"));
      }
      return true;
    }, "policy");

    const reachable = (s: Session) => !s.closed && !(s as { hibernating?: boolean }).hibernating;

    /**
     * Per user, one message's work at a time, in the order the messages came: the store reads of two
     * messages may answer out of order (PostgreSQL pool), and the count and last body must not.
     */
    const queues = new Map<string, Promise<void>>();
    const inOrder = (owner: string, work: () => Promise<void>): Promise<void> => {
      const run = (queues.get(owner) ?? Promise.resolve()).then(work);
      const tail = run.catch(() => undefined);
      queues.set(owner, tail);
      void tail.then(() => { if (queues.get(owner) === tail) queues.delete(owner); });
      return run;
    };

    api.observe("message-delivered", (ev) => {
      // Only stored 1:1 messages to a local account, not a resend, and nobody can take them now.
      if (ev.meta === null || ev.duplicate || ev.to.local === "" || ev.delivered.some(reachable)) return;
      const meta = ev.meta;
      return inOrder(ev.to.bareString(), () => onMissed(ev, meta));
    });
    const onMissed = async (ev: { stanza: Element; from: Jid; to: Jid }, meta: DeliveryMeta): Promise<void> => {
      const owner = ev.to.bareString();
      const body = ev.stanza.getChildText("body");
      const sender = ev.from.toString();
      for (const text of (await registrations.list(owner)).values()) {
        const reg = JSON.parse(text) as Registration;
        schedule(owner, reg, sender, body);
      }
      if (webhook) {
        const ids = [...(await devices.list(owner)).values()];
        if (ids.length) {
          webhook.post({
            event: "message", user: owner, devices: ids, from: ev.from.bareString(), stanzaId: meta.stanzaId, seq: meta.seq, ts: meta.ts,
            ...(o.webhook.includeBody && body !== null ? { body } : {}),
          });
        }
      }
    };

    // Group chat (MUC): the room tells the user's host who misses a message (extensions/muc/features/missed.ts).
    api.observe("groupchat-missed", (ev) => inOrder(ev.user, async () => {
      const body = ev.stanza.getChildText("body");
      for (const text of (await registrations.list(ev.user)).values()) schedule(ev.user, JSON.parse(text) as Registration, ev.from, body);
      if (webhook) {
        const ids = [...(await devices.list(ev.user)).values()];
        if (ids.length) {
          webhook.post({
            event: "groupchat", user: ev.user, devices: ids, room: ev.room, from: ev.from, mention: ev.mention, stanzaId: ev.stanzaId, seq: ev.seq,
            ...(o.webhook.includeBody && body !== null ? { body } : {}),
          });
        }
      }
    }));

    /** Counts the message for `reg` and notifies now or, within the interval, once when it ends. */
    const schedule = (owner: string, reg: Registration, sender: string, body: string | null): void => {
      const key = keyOf(reg.jid, reg.node);
      let byReg = paces.get(owner);
      if (!byReg) paces.set(owner, (byReg = new Map()));
      let p = byReg.get(key);
      if (!p) byReg.set(key, (p = { lastAt: 0, count: 0, timer: null, sender, body }));
      p.count++;
      p.sender = sender;
      p.body = body;
      if (p.timer) return;
      const wait = p.lastAt + o.minIntervalSeconds * 1000 - Date.now();
      const fire = () => {
        const cur = p!;
        cur.timer = null;
        cur.lastAt = Date.now();
        notify(owner, reg, cur.count, cur.sender, cur.body);
        cur.count = 0;
      };
      if (wait <= 0) return fire();
      p.timer = setTimeout(fire, wait);
      p.timer.unref();
    };

    /** XEP-0357 §7: a pubsub publish to the app server, from the user's bare JID. */
    const notify = (owner: string, reg: Registration, count: number, sender: string, body: string | null): void => {
      const fields: Array<[string, string]> = [["FORM_TYPE", SUMMARY], ["message-count", String(count)], ["last-message-sender", sender]];
      // The body only goes to an app server whose registration asked for it (privacy, XEP-0357 §9).
      if (body !== null && reg.options.some(([k, v]) => k === "include-body" && (v === "true" || v === "1"))) fields.push(["last-message-body", body]);
      const id = `push-${(nextId++).toString(36)}`;
      const publishOptions = reg.options.length ? xml("publish-options", null, dataForm([["FORM_TYPE", PUBLISH_OPTIONS], ...reg.options])) : null;
      const iq = xml("iq", { type: "set", id, from: owner, to: reg.jid },
        xml("pubsub", { xmlns: NS_PUBSUB },
          xml("publish", { node: reg.node }, xml("item", null, xml("notification", { xmlns: NS_PUSH }, dataForm(fields)))),
          publishOptions));
      const timer = setTimeout(() => waiting.delete(id), ANSWER_TIMEOUT_MS);
      timer.unref();
      waiting.set(id, { owner, key: keyOf(reg.jid, reg.node), timer });
      api.send(iq);
    };

    api.observe("resource-bind", async ({ session }) => {
      const owner = session.jid!.bareString();
      // A user who is back needs no catching up: the next notification counts from there.
      const byReg = paces.get(owner);
      if (byReg) {
        for (const [key, p] of byReg) if (p.timer === null) byReg.delete(key);
        if (byReg.size === 0) paces.delete(owner);
      }
      if (webhook && session.protocol === "mobile") {
        const resource = session.jid!.resource;
        const device = resource.startsWith(MOBILE_PREFIX) ? resource.slice(MOBILE_PREFIX.length) : resource;
        if ((await devices.get(owner, resource)) !== device) await devices.set(owner, resource, device);
      }
    });
  },
});

function formType(form: Element): string | undefined {
  return form.getChildren("field").find((f) => f.attrs.var === "FORM_TYPE")?.getChildText("value") ?? undefined;
}

function dataForm(fields: Array<[string, string]>): Element {
  return xml("x", { xmlns: NS.dataForms, type: "submit" }, ...fields.map(([k, v]) => xml("field", { var: k }, xml("value", null, v))));
}
