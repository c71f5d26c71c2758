// SASL2 (XEP-0388) with its inline features: Bind2 (XEP-0386: the resource, stream management, client
// state and whatever modules add, e.g. carbons), XEP-0198 resumption and FAST tokens (XEP-0484). The
// whole login, or the resumption of a session after a network change, is one round trip for a token,
// two for SCRAM, and the stream is never restarted. The password policies are
// those of RFC 6120 SASL (sasl/attempt.ts): the same mechanisms, throttle and TLS rule.
import { randomBytes } from "node:crypto";
import { xml, type Element } from "../xml/element.js";
import { NS } from "../xml/ns.js";
import { isThenable } from "../events/hooks.js";
import { resourceprep } from "../jid/jid.js";
import { SaslAttempt, streamMechanisms, type AttemptStream, type SaslFailure } from "./sasl/attempt.js";
import { decodeSaslData, SaslError } from "./sasl/index.js";
import type { C2sContext } from "./context.js";
import type { Session } from "../sessions/session.js";
import { NS_SM } from "./sm.js";
import { NS_CSI } from "./csi.js";
import { fastFeature, FastLogin } from "./fast.js";

export const NS_SASL2 = "urn:xmpp:sasl:2";
export const NS_BIND2 = "urn:xmpp:bind:0";

/** XEP-0388 §2.3: the user agent a client names itself with (the id is stable per installation). */
export interface UserAgent { id: string; software?: string; device?: string }

/** What a client stream lends the negotiation (C2sSession implements it). */
export interface Sasl2Stream extends AttemptStream, Session {
  authenticatedAs(user: string): void;
  /** Counts a failed attempt; the stream ends after too many (RFC 6120 §6.4.5). */
  countSaslFailure(): void;
  /** Binds `resource` (RFC 6120 §7 rules and c2s.resourceConflict); false when it is refused. */
  bindResource(resource: string): boolean;
  /** XEP-0198 `<enable/>`, answered with `<enabled/>` or `<failed/>` (not sent). */
  enableManagement(el: Element): Element;
  setClientState(state: "active" | "inactive"): void;
  /** Post-authentication stream features (after SASL2 without Bind2, XEP-0388 §2.6.1). */
  sendFeatures(): void;
  /** After Bind2: the resource-bind observers. */
  announceBound(): unknown;
  /** XEP-0198 `<resume/>` inline: resumed (`announce` writes the success), or the `<failed/>` for the success. */
  resumeInline(el: Element, announce: (resumed: Element, jid: string) => string): Promise<{ failed: Element } | { done: Promise<void> | undefined }>;
}

const AGENT_ID = /^[\x21-\x7e]{1,128}$/;
const TAG = /^[\p{L}\p{N}._-]{1,32}$/u;

/** The features a Bind2 request may enable inline (XEP-0386 §3): the core's and the modules'. */
export function bind2Features(ctx: C2sContext, stream: Sasl2Stream): string[] {
  return [NS_SM, NS_CSI, ...ctx.hooks.runFold(stream.host, "bind2-features", [], { session: stream })];
}

/** The `<authentication/>` stream feature with its inline features (`bindFeatures`: bind2Features). */
export function sasl2Feature(ctx: C2sContext, stream: Sasl2Stream, bindFeatures: string[]): Element {
  const mechs = streamMechanisms(ctx.config.auth, stream);
  const inline = xml("inline", null,
    xml("bind", { xmlns: NS_BIND2 }, xml("inline", null, ...bindFeatures.map((v) => xml("feature", { var: v })))),
    // XEP-0198 with SASL2: `<resume/>` may ride in `<authenticate/>`.
    xml("sm", { xmlns: NS_SM }),
    ctx.config.auth.fastTokenTtlSeconds > 0 ? fastFeature(stream.channel) : null,
  );
  return xml("authentication", { xmlns: NS_SASL2 }, ...mechs.map((m) => xml("mechanism", null, m)), inline);
}

/** The state of one SASL2 exchange on one stream (from `<authenticate/>` to `<success/>` or `<failure/>`). */
export class Sasl2Negotiation {
  private attempt: SaslAttempt | null = null;
  private authenticate: Element | null = null;
  private agent: UserAgent | null = null;
  private fast: FastLogin | null = null;

  constructor(private readonly ctx: C2sContext, private readonly stream: Sasl2Stream) {}

  handle(el: Element): unknown {
    switch (el.name) {
      case "authenticate": return this.start(el);
      case "response": {
        const attempt = this.attempt;
        if (!attempt) return this.fail({ kind: "failure", condition: "malformed-request", text: "no authentication in progress" });
        let data: Buffer;
        try { data = decodeSaslData(el.getText()); } catch (err) { return this.fail(asFailure(err)); }
        return this.step(attempt, data);
      }
      case "abort":
        this.attempt = null;
        return this.fail({ kind: "failure", condition: "aborted" });
      default:
        return this.fail({ kind: "failure", condition: "malformed-request", text: `<${el.name}/> is not part of SASL2` });
    }
  }

  private start(el: Element): unknown {
    this.attempt = null;
    const ua = el.getChild("user-agent");
    if (ua) {
      const id = ua.attrs.id;
      if (id !== undefined && !AGENT_ID.test(id)) return this.fail({ kind: "failure", condition: "malformed-request", text: "invalid user-agent id" });
      this.agent = { id: id ?? "", software: ua.getChildText("software")?.slice(0, 256) ?? undefined, device: ua.getChildText("device")?.slice(0, 256) ?? undefined };
    } else this.agent = null;
    const fastEnabled = this.ctx.config.auth.fastTokenTtlSeconds > 0;
    const fast = fastEnabled ? FastLogin.fromAuthenticate(this.ctx, this.stream, el, this.agent) : null;
    this.fast = null;
    if (fast instanceof SaslError) return this.fail({ kind: "failure", condition: fast.condition, text: fast.message });
    this.fast = fast;
    const started = SaslAttempt.start(this.ctx.login, this.ctx.config.auth, this.stream, el.attrs.mechanism ?? "", fast ? (tried) => fast.tokenCheck(tried) : undefined);
    if (!(started instanceof SaslAttempt)) return this.fail(started);
    this.attempt = started;
    this.authenticate = el;
    const initial = el.getChild("initial-response");
    let data: Buffer;
    try { data = initial ? decodeSaslData(initial.getText()) : Buffer.alloc(0); } catch (err) { return this.fail(asFailure(err)); }
    return this.step(started, data);
  }

  private step(attempt: SaslAttempt, data: Buffer): Promise<unknown> {
    return attempt.step(data).then((out) => {
      if (this.stream.closed || this.attempt !== attempt) return undefined;
      if (out.kind === "challenge") {
        this.stream.send(xml("challenge", { xmlns: NS_SASL2 }, data64(out.data)));
        return undefined;
      }
      if (out.kind === "failure") return this.fail(out);
      this.attempt = null;
      return this.succeed(out.user, out.data);
    }, (err: unknown) => {
      if (this.stream.closed || this.attempt !== attempt) return undefined;
      this.ctx.log.error({ err, session: this.stream.id }, "SASL2 mechanism failed");
      return this.fail({ kind: "failure", condition: "temporary-auth-failure" });
    });
  }

  private fail(out: SaslFailure): void {
    this.attempt = null;
    this.stream.send(xml("failure", { xmlns: NS_SASL2 }, xml(out.condition, { xmlns: NS.sasl }), out.text ? xml("text", { "xml:lang": "en" }, out.text) : null));
    this.stream.countSaslFailure();
  }

  private async succeed(user: string, additional: Buffer | undefined): Promise<void> {
    const stream = this.stream;
    const el = this.authenticate!;
    this.authenticate = null;
    stream.authenticatedAs(user);
    if (this.agent) stream.data.set("user-agent", this.agent);
    const success = xml("success", { xmlns: NS_SASL2 });
    if (additional?.length) success.cnode(xml("additional-data", null, additional.toString("base64")));
    const aid = xml("authorization-identifier", null, `${user}@${stream.host}`);
    success.cnode(aid);
    // XEP-0484: tokens are issued, rotated or invalidated once the login itself succeeded.
    const token = this.fast ? await this.fast.afterSuccess(user) : null;
    if (stream.closed) return;
    // XEP-0198 with SASL2: a resumed session needs no Bind2; a failed resumption is reported in the
    // success and the login goes on (with Bind2 when asked), as a fresh session.
    const resume = el.getChild("resume", NS_SM);
    if (resume) {
      const out = await stream.resumeInline(resume, (resumed, jid) => {
        aid.children = [jid];
        success.cnode(resumed);
        if (token) success.cnode(token);
        return success.toString();
      });
      if ("done" in out) {
        this.ctx.log.debug({ session: stream.id, user, agent: this.agent?.id }, "SASL2 login resumed a session");
        return out.done;
      }
      if (stream.closed) return;
      success.cnode(out.failed);
    }
    const bind = el.getChild("bind", NS_BIND2);
    let bound: Element | null = null;
    if (bind) {
      bound = await this.bind(bind);
      if (stream.closed) return;
      if (bound !== null) {
        aid.children = [stream.jid!.toString()];
        success.cnode(bound);
      }
      // A refused resource: the authentication stands; the client binds as usual on the features we send.
    }
    if (token) success.cnode(token);
    stream.send(success);
    this.ctx.log.debug({ session: stream.id, user, agent: this.agent?.id, bound: stream.jid?.toString() }, "SASL2 login");
    if (bound) return void (await stream.announceBound());
    // XEP-0388 §2.6.1: no restart; without Bind2 the features of an authenticated stream follow.
    stream.sendFeatures();
  }

  /** XEP-0386 §2.3: the server picks the resource (the client's tag is a prefix), then the inline features. */
  private async bind(bind: Element): Promise<Element | null> {
    const stream = this.stream;
    const tag = bind.getChildText("tag");
    let prefix = "";
    if (tag && TAG.test(tag)) { try { prefix = `${resourceprep(tag)}.`; } catch { prefix = ""; } }
    if (!stream.bindResource(`${prefix}${randomBytes(6).toString("hex")}`)) return null;
    const bound = xml("bound", { xmlns: NS_BIND2 });
    for (const child of bind.children) {
      if (typeof child === "string" || child.name === "tag") continue;
      const ns = child.attrs.xmlns;
      if (ns === NS_SM && child.name === "enable") { bound.cnode(stream.enableManagement(child)); continue; }
      if (ns === NS_CSI && (child.name === "active" || child.name === "inactive")) { stream.setClientState(child.name); continue; }
      let r = this.ctx.hooks.run(stream.host, "bind2-inline", { session: stream, element: child });
      if (isThenable(r)) r = await r;
      if (r && typeof r === "object" && "name" in r && typeof (r as Element).cnode === "function") bound.cnode(r as Element);
    }
    return bound;
  }
}

function data64(b: Buffer): string {
  return b.length ? b.toString("base64") : "";
}

function asFailure(err: unknown): SaslFailure {
  return { kind: "failure", condition: err instanceof SaslError ? err.condition : "malformed-request" };
}
