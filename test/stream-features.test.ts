// Stream features (RFC 6120 §4.3.2): the core's are serialised once per combination of what they depend
// on (C2sSession.sendFeatures); what modules fold in is asked for on every stream.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient } from "./helpers/raw-client.js";
import { clone, xml, type Element } from "../src/xml/element.js";
import { defineModule } from "../src/modules/module.js";
import { extensions } from "../extensions/index.js";

const PROBE = "urn:example:probe";
const BIND2 = "urn:xmpp:bind:0";
const SASL2 = "urn:xmpp:sasl:2";

/** A module whose stream feature differs on every stream, and whose Bind2 feature can be switched on. */
let asked = 0;
let bind2Extra = false;
const probe = defineModule({
  name: "features-test-probe",
  setup(api) {
    api.fold("stream-features", (acc, { session, authenticated }) => {
      acc.push(xml("probe", { xmlns: PROBE, n: String(++asked), authenticated: String(authenticated), peer: session.remoteAddress }));
      return acc;
    });
    api.fold("bind2-features", (acc) => (bind2Extra ? [...acc, "urn:example:bind2-extra"] : acc));
  },
});

const childNames = (features: Element) => features.children.filter((c): c is Element => typeof c !== "string").map((c) => c.name);
const inlineBind2 = (features: Element) => features.getChild("authentication", SASL2)!.getChild("inline")!
  .getChild("bind", BIND2)!.getChild("inline")!.getChildren("feature").map((f) => f.attrs.var as string);

describe("stream features", () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer({}, { modules: [...extensions, probe] });
    await ts.accounts.create(ts.host, "feat", "secret-password");
  });
  after(() => ts.stop());

  it("asks the modules on every stream, and keeps their features between the core's and the limits", async () => {
    const seen: Element[] = [];
    for (const localAddress of ["127.0.0.1", "127.0.0.2", "127.0.0.1"]) {
      const c = await RawClient.connect(ts, { localAddress });
      seen.push(await c.open());
      c.close();
    }
    const probes = seen.map((f) => f.getChild("probe", PROBE)!);
    assert.deepEqual(probes.map((p) => p.attrs.peer), ["127.0.0.1", "127.0.0.2", "127.0.0.1"]);
    const ns = probes.map((p) => Number(p.attrs.n));
    assert.ok(ns[0] < ns[1] && ns[1] < ns[2], `each stream asked again: ${ns.join(", ")}`);
    for (const f of seen) {
      const names = childNames(f);
      assert.equal(names.at(-1), "limits");
      assert.equal(names.at(-2), "probe");
      assert.ok(names.indexOf("mechanisms") < names.indexOf("authentication") && names.indexOf("authentication") < names.indexOf("register"));
      assert.equal(f.getChild("probe", PROBE)!.attrs.authenticated, "false");
    }
    // The same core for every stream: only the module's feature differs.
    const core = (f: Element) => { const copy = clone(f); copy.remove("probe", PROBE); return copy.toString(); };
    assert.equal(core(seen[1]), core(seen[0]));
    assert.equal(core(seen[2]), core(seen[0]));
  });

  it("gives an authenticated stream its own features, with the modules' asked for that stream", async () => {
    const c = await RawClient.connect(ts);
    await c.open();
    await c.authenticate("feat", "secret-password");
    const features = await c.open();
    c.close();
    const names = childNames(features);
    assert.deepEqual(names.slice(0, 4), ["bind", "session", "sm", "csi"]);
    assert.equal(names.at(-1), "limits");
    assert.ok(features.getChild("limits")!.getChild("idle-seconds"));
    assert.equal(features.getChild("probe", PROBE)!.attrs.authenticated, "true");
    assert.equal(features.getChild("mechanisms"), undefined);
  });

  it("offers a Bind2 feature a module folds in from the next stream on", async () => {
    const before = await RawClient.connect(ts);
    const first = inlineBind2(await before.open());
    before.close();
    assert.ok(!first.includes("urn:example:bind2-extra"));
    bind2Extra = true;
    try {
      const after = await RawClient.connect(ts);
      const second = inlineBind2(await after.open());
      after.close();
      assert.deepEqual(second, [...first, "urn:example:bind2-extra"]);
    } finally {
      bind2Extra = false;
    }
    const again = await RawClient.connect(ts);
    assert.deepEqual(inlineBind2(await again.open()), first);
    again.close();
  });
});
