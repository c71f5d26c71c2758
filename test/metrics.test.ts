// Prometheus metrics at /metrics on the HTTP port: the exposition parses with an independent parser
// (parse-prometheus-text-format), and the counters move with a real client's login and message.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { client, xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import parsePrometheus, { type Family } from "parse-prometheus-text-format";
import { startTestServer, type TestServer } from "./helpers/server.js";

async function scrape(ts: TestServer): Promise<{ status: number; families: Map<string, Family>; text: string }> {
  const res = await fetch(`http://127.0.0.1:${ts.httpPort}/metrics`);
  const text = await res.text();
  if (res.status !== 200) return { status: res.status, families: new Map(), text };
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return { status: res.status, families: new Map(parsePrometheus(text).map((f) => [f.name, f])), text };
}

/** The value of the sample of `name` whose labels include `labels`; 0 when there is none. */
function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name);
  assert.ok(family, `metric ${name} is exposed`);
  const sample = family.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  if (sample === undefined) return 0;
  return Number(sample.value ?? sample.count);
}

const sumOf = (families: Map<string, Family>, name: string) =>
  (families.get(name)?.metrics ?? []).reduce((n, m) => n + Number(m.value), 0);

/** An @xmpp/client on the plain port. */
function xmppClient(ts: TestServer, username: string, password: string): Client {
  const xmpp = client({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username, password, resource: "metrics" });
  // COMPAT: @xmpp/client upgrades whenever STARTTLS is offered and checks the certificate; the test
  // server's is self-signed and TLS is optional here, so the client is shown no STARTTLS.
  xmpp.prependListener("element", (el: Element) => {
    if (el.name === "stream:features") el.remove("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
  });
  xmpp.on("error", () => {});
  return xmpp;
}

async function connect(ts: TestServer, username: string, password = "password"): Promise<{ xmpp: Client; inbox: Element[] }> {
  const xmpp = xmppClient(ts, username, password);
  const inbox: Element[] = [];
  xmpp.on("stanza", (el: Element) => inbox.push(el));
  await xmpp.start();
  await xmpp.send(xml("presence"));
  await until("the own presence", () => inbox.some((el) => el.is("presence") && el.attrs.from === xmpp.jid?.toString()));
  return { xmpp, inbox };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("Prometheus metrics (/metrics)", () => {
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(async () => { await ts?.stop(); });

  it("parses as Prometheus text with hearth_ families of the documented types, and process metrics", async () => {
    const { families } = await scrape(ts);
    const types: Record<string, Family["type"]> = {
      hearth_info: "GAUGE", hearth_connections: "GAUGE", hearth_sessions: "GAUGE", hearth_logins_total: "COUNTER",
      hearth_login_failures_total: "COUNTER", hearth_stanzas_total: "COUNTER", hearth_messages_archived_total: "COUNTER",
      hearth_timeline_commit_batch_size: "HISTOGRAM", hearth_timeline_commit_duration_seconds: "HISTOGRAM",
      hearth_muc_rooms: "GAUGE", hearth_muc_occupants: "GAUGE", hearth_cluster_nodes: "GAUGE",
      nodejs_eventloop_lag_seconds: "GAUGE", process_resident_memory_bytes: "GAUGE",
    };
    for (const [name, type] of Object.entries(types)) assert.equal(families.get(name)?.type, type, name);
    assert.equal(value(families, "hearth_cluster_nodes"), 1);
    assert.equal(families.get("hearth_info")!.metrics[0].labels!.storage, ts.server.context.store.driver);
    // The PostgreSQL pool (the SQLite driver has none, and no samples).
    if (ts.server.context.store.driver === "postgres") assert.ok(value(families, "hearth_store_pool_connections", { state: "total" }) >= 1);
    else assert.equal(families.get("hearth_store_pool_connections")?.metrics.length ?? 0, 0);
  });

  it("serves every hearth_ metric the sample Grafana dashboard (schemas/grafana) queries", async () => {
    const dashboard = readFileSync(new URL("../../schemas/grafana/hearth-dashboard.json", import.meta.url), "utf8");
    const { families } = await scrape(ts);
    const names = new Set([...dashboard.matchAll(/\b(hearth_[a-z_]+?)(?:_bucket|_sum|_count)?\{/g)].map((m) => m[1]));
    assert.ok(names.size >= 8);
    for (const name of names) assert.ok(families.has(name), `${name} is served`);
  });

  it("counts a login, a failed login, a message in and out, the archived row, its commit and the open connections", async () => {
    await ts.accounts.create(ts.host, "mercutio", "password");
    await ts.accounts.create(ts.host, "benvolio", "password");
    const before = (await scrape(ts)).families;
    const logins = sumOf(before, "hearth_logins_total");

    const wrong = xmppClient(ts, "mercutio", "nope");
    await assert.rejects(wrong.start());
    await wrong.stop().catch(() => {});

    const mercutio = await connect(ts, "mercutio");
    const benvolio = await connect(ts, "benvolio");
    await mercutio.xmpp.send(xml("message", { to: "benvolio@localhost", type: "chat", id: "m1" }, xml("body", {}, "a plague")));
    await until("the message", () => benvolio.inbox.some((el) => el.is("message") && el.getChildText("body") === "a plague"));

    const after = (await scrape(ts)).families;
    assert.equal(sumOf(after, "hearth_logins_total") - logins, 2, "two successful logins");
    const mechanism = after.get("hearth_logins_total")!.metrics.find((m) => Number(m.value) > 0)!.labels!.mechanism;
    assert.match(mechanism, /^(SCRAM-SHA-1|SCRAM-SHA-256|PLAIN)$/);
    assert.equal(value(after, "hearth_login_failures_total", { mechanism }) - value(before, "hearth_login_failures_total", { mechanism }), 1);
    assert.ok(value(after, "hearth_stanzas_total", { direction: "in", kind: "message" }) - value(before, "hearth_stanzas_total", { direction: "in", kind: "message" }) >= 1);
    assert.ok(value(after, "hearth_stanzas_total", { direction: "out", kind: "message" }) - value(before, "hearth_stanzas_total", { direction: "out", kind: "message" }) >= 1);
    assert.equal(value(after, "hearth_messages_archived_total") - value(before, "hearth_messages_archived_total"), 1);
    assert.ok(value(after, "hearth_timeline_commit_batch_size") > value(before, "hearth_timeline_commit_batch_size"), "a commit was observed");
    assert.ok(value(after, "hearth_timeline_commit_duration_seconds") > value(before, "hearth_timeline_commit_duration_seconds"));
    assert.equal(value(after, "hearth_connections", { transport: "tcp" }), 2);
    assert.equal(value(after, "hearth_sessions"), 2);

    await mercutio.xmpp.stop();
    await benvolio.xmpp.stop();
    await until("the connections to close", async () => value((await scrape(ts)).families, "hearth_connections", { transport: "tcp" }) === 0);
  });
});

describe("Prometheus metrics: access", () => {
  let ts: TestServer;
  before(async () => { ts = await startTestServer({ ops: { networks: ["192.0.2.0/24"] } }); });
  after(async () => { await ts?.stop(); });

  it("answers 403 to an address outside ops.networks", async () => {
    const { status, text } = await scrape(ts);
    assert.equal(status, 403);
    assert.doesNotMatch(text, /hearth_/);
  });
});
