// XEP-0077: In-Band Registration. Account creation before authentication (through "preauth-iq"), and
// for an authenticated user: the registration on file, password change and account removal.
import { moduleOptions } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { xml, type Element } from "../../src/xml/element.js";
import { errorReply, iqPayload, reply, StanzaError } from "../../src/xml/stanza.js";
import { tryParseJid } from "../../src/jid/jid.js";
import { AccountError } from "../../src/auth/accounts.js";
import type { Session } from "../../src/sessions/session.js";
import { policyAllows, RegistrationLimiter } from "./policy.js";

export const NS_REGISTER = "jabber:iq:register";
export const NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register";

export const registerOptions = moduleOptions("In-band registration (XEP-0077); who may register is registration.policy.", {
  perIpPerHour: {
    kind: "integer",
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    default: 10,
    description: "Accounts one address may create per hour; 0 disables the limit.",
  },
});

const INSTRUCTIONS = "Choose a username and password to register with this server.";

/** The text of a field, or null when absent or empty (XEP-0077 §3.1 treats <password/> as not provided). */
function fieldText(query: Element, name: string): string | null {
  const text = query.getChildText(name, NS_REGISTER);
  return text === null || text === "" ? null : text;
}

function accountErrorToIq(err: unknown): StanzaError {
  if (!(err instanceof AccountError)) throw err;
  switch (err.code) {
    case "exists": return new StanzaError("conflict", "the username is taken");
    case "invalid-username": return new StanzaError("jid-malformed", err.message);
    case "weak-password": return new StanzaError("not-acceptable", err.message);
    case "not-found": return new StanzaError("registration-required");
    case "unknown-host": return new StanzaError("service-unavailable");
  }
}

export const register = defineModule({
  name: "register",
  xep: [{ spec: "XEP-0077", title: "In-Band Registration", version: "2.4", status: "complete", note: "no data forms (XEP-0077 §4 is optional)" }],
  options: registerOptions,
  setup(api) {
    const limiter = new RegistrationLimiter(api.options.perIpPerHour, api.config.auth.exemptNetworks);
    api.setInterval(() => limiter.sweep(), 600_000);
    const allowed = (session: Session) => policyAllows(api.config.registration.policy, session.remoteAddress);

    api.addFeature(NS_REGISTER);
    api.fold("stream-features", (acc, { session, authenticated }) => {
      // XEP-0077 §8: advertised to clients that could register.
      if (!authenticated && allowed(session)) acc.push(xml("register", { xmlns: NS_REGISTER_FEATURE }));
      return acc;
    });

    const createAccount = async (session: Session, query: Element): Promise<void> => {
      // XEP-0077 §3.2: cancelling needs an authenticated account to cancel.
      if (query.getChild("remove", NS_REGISTER)) throw new StanzaError("unexpected-request", "authenticate before removing an account", "cancel");
      const username = fieldText(query, "username");
      const password = fieldText(query, "password");
      // XEP-0077 §3.1: all requested fields must be provided, or not-acceptable.
      if (username === null || password === null) throw new StanzaError("not-acceptable", "a username and a password are required");
      // XEP-0077 §3.1.1: a server may refuse too many registrations.
      if (!limiter.allowed(session.remoteAddress)) throw new StanzaError("resource-constraint", "too many registrations from your address; try again later");
      let user: string;
      try {
        user = await api.accounts.create(session.host, username, password);
      } catch (err) {
        throw accountErrorToIq(err);
      }
      limiter.record(session.remoteAddress);
      api.log.info({ user: `${user}@${session.host}`, address: session.remoteAddress }, "account registered in-band");
    };

    api.on("preauth-iq", (ev) => {
      const { session, stanza } = ev;
      const query = iqPayload(stanza);
      if (ev.ns !== NS_REGISTER || query?.getName() !== "query") return false;
      if (stanza.attrs.to !== undefined && tryParseJid(stanza.attrs.to)?.toString() !== session.host) return false;
      // XEP-0077 §3.1: a host that does not offer in-band registration answers service-unavailable.
      if (!allowed(session)) {
        session.send(errorReply(stanza, "service-unavailable", "in-band registration is not available"));
        return true;
      }
      if (stanza.attrs.type === "get") {
        session.send(reply(stanza, xml("query", { xmlns: NS_REGISTER },
          xml("instructions", null, INSTRUCTIONS), xml("username"), xml("password"))));
        return true;
      }
      return createAccount(session, query).then(
        () => { session.send(reply(stanza)); return true; },
        (err) => {
          if (err instanceof StanzaError) session.send(errorReply(stanza, err.condition, err.text, err.type));
          else {
            api.log.error({ err }, "in-band registration failed");
            session.send(errorReply(stanza, "internal-server-error"));
          }
          return true;
        });
    });

    // XEP-0077 §3.1: an authenticated entity is told it is registered, with the information on file.
    api.onIq("get", ["host", "self"], NS_REGISTER, "query", (ev) =>
      xml("query", { xmlns: NS_REGISTER },
        xml("registered"),
        xml("instructions", null, "You are registered. Send a new password to change it, or <remove/> to delete your account."),
        xml("username", null, ev.from.local),
        xml("password")));

    api.onIq("set", ["host", "self"], NS_REGISTER, "query", async (ev) => {
      const query = ev.stanza.getChild("query", NS_REGISTER)!;
      const host = ev.from.domain;
      const own = ev.from.local;
      if (query.getChild("remove", NS_REGISTER)) {
        // XEP-0077 §3.2: <remove/> must be the only child.
        if (query.getChildElements().length !== 1) throw new StanzaError("bad-request", "<remove/> must be the only child");
        // The result goes out first: removal ends every session of the account with a
        // <not-authorized/> stream error (XEP-0077 §3.2), so it runs once the answer is on its way.
        setImmediate(() => {
          api.accounts.delete(host, own).then(
            () => api.log.info({ user: `${own}@${host}` }, "account removed in-band"),
            (err) => api.log.warn({ err, user: `${own}@${host}` }, "in-band account removal failed"));
        });
        return true;
      }
      const username = fieldText(query, "username");
      const password = fieldText(query, "password");
      // XEP-0077 §3.3: an empty password never replaces the current one.
      if (password === null) throw new StanzaError("bad-request", "a new password is required");
      if (username !== null) {
        let prepared: string;
        try {
          prepared = api.accounts.prepareUsername(username);
        } catch (err) {
          throw accountErrorToIq(err);
        }
        if (prepared !== own) throw new StanzaError("forbidden", "you can only change your own password");
      }
      try {
        await api.accounts.setPassword(host, own, password);
      } catch (err) {
        throw accountErrorToIq(err);
      }
      api.log.info({ user: `${own}@${host}` }, "password changed in-band");
      return true;
    });
  },
});
