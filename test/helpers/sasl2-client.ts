// Test-side SASL2 (XEP-0388) clients: xmpp.js with Bind2 carbons, and a raw HT-SHA-256-NONE (FAST) login.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { client, xml as jsxml } from "@xmpp/client";
import type { TestServer } from "./server.js";
import { RawClient } from "./raw-client.js";
import { xml, type Element } from "../../src/xml/element.js";

export const SASL2 = "urn:xmpp:sasl:2";
export const BIND2 = "urn:xmpp:bind:0";
export const FAST = "urn:xmpp:fast:0";
export const CARBONS = "urn:xmpp:carbons:2";

export type Xmpp = ReturnType<typeof client>;
export interface Token { mechanism: string; token: string; expiry: string }

/** An xmpp.js client that asks Bind2 to enable carbons, recording what it sends and receives. */
export function jsClient(ts: TestServer, username: string, password: string, agentId: string): { xmpp: Xmpp; sent: Element[]; received: Element[] } {
  const xmpp = client({
    service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username, password, resource: "phone",
    userAgent: jsxml("user-agent", { id: agentId }, jsxml("software", {}, "hearth-test"), jsxml("device", {}, "ci")),
  } as Parameters<typeof client>[0]);
  // COMPAT: @xmpp/client upgrades whenever STARTTLS is offered and checks the certificate; the test
  // server's is self-signed and TLS is optional here, so the client is shown no STARTTLS.
  xmpp.prependListener("element", (el: Element) => {
    if (el.name === "stream:features") el.remove("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
  });
  (xmpp.bind2 as unknown as { use(ns: string, req: () => unknown): void }).use(CARBONS, () => jsxml("enable", { xmlns: CARBONS }));
  const sent: Element[] = [];
  const received: Element[] = [];
  xmpp.on("send", (el: Element) => sent.push(el));
  xmpp.on("element", (el: Element) => received.push(el));
  xmpp.on("error", () => {});
  return { xmpp, sent, received };
}

/** Waits for an incoming stanza of the xmpp.js client. */
export function stanza(xmpp: Xmpp, match: (el: Element) => boolean, ms = 5000): Promise<Element> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { xmpp.removeListener("stanza", on); reject(new Error("no matching stanza")); }, ms);
    const on = (el: Element) => { if (match(el)) { clearTimeout(t); xmpp.removeListener("stanza", on); resolve(el); } };
    xmpp.on("stanza", on);
  });
}

/** A raw SASL2 token login (HT-SHA-256-NONE) to see the server's exact answer. */
export async function rawTokenLogin(ts: TestServer, user: string, token: string, agentId: string, extra: Element[] = [xml("fast", { xmlns: FAST })]): Promise<Element> {
  const c = await RawClient.connect(ts);
  try {
    const features = await c.open();
    assert.ok(features.getChild("authentication", SASL2)?.getChild("inline")?.getChild("fast", FAST), "FAST is offered inline");
    const hmac = createHmac("sha256", Buffer.from(token, "utf8")).update("Initiator").digest();
    const initial = Buffer.concat([Buffer.from(`${user}\0`, "utf8"), hmac]).toString("base64");
    c.send(xml("authenticate", { xmlns: SASL2, mechanism: "HT-SHA-256-NONE" },
      xml("initial-response", null, initial), xml("user-agent", { id: agentId }), ...extra));
    return await c.receive((el) => el.attrs.xmlns === SASL2);
  } finally {
    c.close();
  }
}
