// XEP-0030 service discovery and XEP-0115 server caps, as dialogues over real sockets.
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { RawClient, errorCondition, onlineUser } from "./helpers/raw-client.js";
import { xml, type Element } from "../src/xml/element.js";
import { defineModule } from "../src/modules/module.js";
import { capsVer, verificationString, type CapsIdentity } from "../extensions/disco/caps.js";
import * as ltx from "ltx";

const INFO = "http://jabber.org/protocol/disco#info";
const ITEMS = "http://jabber.org/protocol/disco#items";
const CAPS = "http://jabber.org/protocol/caps";

const info = (to?: string, node?: string) => xml("iq", { type: "get", to }, xml("query", { xmlns: INFO, node }));
const items = (to?: string, node?: string) => xml("iq", { type: "get", to }, xml("query", { xmlns: ITEMS, node }));
const features = (res: Element) => res.getChild("query", INFO)!.getChildren("feature").map((f) => f.attrs.var as string);
const identities = (res: Element): CapsIdentity[] => res.getChild("query", INFO)!.getChildren("identity")
  .map((i) => ({ category: i.attrs.category, type: i.attrs.type, name: i.attrs.name, lang: i.attrs["xml:lang"] }));
const forms = (res: Element) => res.getChild("query", INFO)!.getChildren("x", "jabber:x:data");

/** A module that plays "a later module": a feature, an XEP-0128 form, an item and a node of its own. */
const extra = defineModule({
  name: "disco-test-extra",
  setup(api) {
    api.addFeature("urn:example:extra");
    api.fold("disco-info", (acc, ctx) => {
      if (ctx.to.local) return acc;
      if (ctx.node === null) {
        acc.push(xml("x", { xmlns: "jabber:x:data", type: "result" },
          xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", null, "http://jabber.org/network/serverinfo")),
          xml("field", { var: "admin-addresses" }, xml("value", null, "xmpp:admin@localhost"), xml("value", null, "mailto:admin@localhost"))));
      } else if (ctx.node === "urn:example:node") {
        acc.push(xml("identity", { category: "automation", type: "command-list" }));
      }
      return acc;
    });
    api.fold("disco-items", (acc, ctx) => {
      if (ctx.to.local) return acc;
      if (ctx.node === null) acc.push(xml("item", { jid: "rooms.localhost", name: "Rooms" }));
      else if (ctx.node === "urn:example:node") acc.push(xml("item", { jid: "localhost", node: "urn:example:node/1" }));
      return acc;
    });
  },
});

describe("XEP-0030 service discovery (disco)", function () {
  let ts: TestServer;
  let alice: RawClient;
  before(async () => {
    ts = await startTestServer({ modules: { disabled: ["muc", "upload"] } }) // no component: the server lists exactly what this file folds in;
    alice = await onlineUser(ts, "alice");
    await ts.accounts.create(ts.host, "bob", "password");
  });
  after(async () => {
    alice.close();
    await ts.stop();
  });

  it("describes the server: identity server/im and every host feature of the loaded modules", async () => {
    const res = await alice.iq(info("localhost"));
    assert.equal(res.attrs.type, "result");
    assert.equal(res.attrs.from, "localhost");
    assert.deepEqual(identities(res), [{ category: "server", type: "im", name: "hearth", lang: undefined }]);
    for (const f of [INFO, ITEMS, CAPS, "urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time", "jabber:iq:register", "vcard-temp", "jabber:iq:private", "jabber:iq:last"]) {
      assert.ok(features(res).includes(f), `missing ${f}`);
    }
  });

  it("lists no items for the server when no module adds any", async () => {
    const res = await alice.iq(items("localhost"));
    assert.equal(res.attrs.type, "result");
    assert.equal(res.getChild("query", ITEMS)!.getChildElements().length, 0);
  });

  it("answers item-not-found for a node nobody serves (XEP-0030 §7)", async () => {
    assert.equal(errorCondition(await alice.iq(info("localhost", "urn:nowhere"))), "item-not-found");
    assert.equal(errorCondition(await alice.iq(items("localhost", "urn:nowhere"))), "item-not-found");
  });

  it("describes the user's own account when the query has no 'to' or the user's bare JID", async () => {
    for (const to of [undefined, "alice@localhost"]) {
      const res = await alice.iq(info(to));
      assert.equal(res.attrs.type, "result");
      // XEP-0163 §6: the account is a PEP service too (the pep module).
      assert.deepEqual(identities(res), [
        { category: "account", type: "registered", name: undefined, lang: undefined },
        { category: "pubsub", type: "pep", name: undefined, lang: undefined },
      ]);
      assert.ok(features(res).includes("vcard-temp"));
      assert.ok(!features(res).includes("urn:xmpp:ping"), "host features are not account features");
    }
    const its = await alice.iq(items());
    assert.equal(its.attrs.type, "result");
    assert.equal(errorCondition(await alice.iq(info(undefined, "urn:nowhere"))), "item-not-found");
    assert.equal(errorCondition(await alice.iq(items(undefined, "urn:nowhere"))), "item-not-found");
  });

  it("describes another existing account, and answers service-unavailable for one that does not exist (RFC 6121 §8.5.1)", async () => {
    const res = await alice.iq(info("bob@localhost"));
    assert.equal(res.attrs.type, "result");
    assert.equal(res.attrs.from, "bob@localhost");
    assert.equal(identities(res)[0].category, "account");
    assert.equal((await alice.iq(items("bob@localhost"))).attrs.type, "result");
    assert.equal(errorCondition(await alice.iq(info("nobody@localhost"))), "service-unavailable");
    assert.equal(errorCondition(await alice.iq(items("nobody@localhost"))), "service-unavailable");
  });

  it("leaves queries to other domains to routing", async () => {
    const res = await alice.iq(info("elsewhere.example"));
    assert.equal(errorCondition(res), "remote-server-not-found");
  });

  describe("XEP-0115 server capabilities", () => {
    it("advertises caps in the stream features after authentication only", async () => {
      const c = await RawClient.connect(ts);
      const before = await c.open();
      assert.equal(before.getChild("c", CAPS), undefined);
      await c.authenticate("bob", "password");
      const after = await c.open();
      const caps = after.getChild("c", CAPS)!;
      assert.equal(caps.attrs.hash, "sha-1");
      assert.equal(caps.attrs.node, "urn:hearth:caps");
      assert.match(caps.attrs.ver, /^[A-Za-z0-9+/]{27}=$/);
      c.close();
    });

    it("computes 'ver' from the disco#info it answers for node#ver (XEP-0115 §5.1, §6.2)", async () => {
      const c = await RawClient.connect(ts);
      await c.open();
      await c.authenticate("bob", "password");
      const caps = (await c.open()).getChild("c", CAPS)!;
      await c.bind();
      const node = `${caps.attrs.node}#${caps.attrs.ver}`;
      const res = await c.iq(info("localhost", node));
      assert.equal(res.attrs.type, "result");
      assert.equal(res.getChild("query", INFO)!.attrs.node, node);
      assert.equal(capsVer(identities(res), features(res), forms(res)), caps.attrs.ver);
      assert.deepEqual(features(res).sort(), features(await c.iq(info("localhost"))).sort());
      // A ver that is not the current one is an unknown node.
      assert.equal(errorCondition(await c.iq(info("localhost", `${caps.attrs.node}#AAAAAAAAAAAAAAAAAAAAAAAAAAA=`))), "item-not-found");
      c.close();
    });
  });
});

describe("disco with features, forms and items of other modules", function () {
  let ts: TestServer;
  let alice: RawClient;
  before(async () => {
    ts = await startTestServer({ modules: { disabled: ["muc", "upload"] } }) // no component: the server lists exactly what this file folds in;
    alice = await onlineUser(ts, "alice");
  });
  after(async () => {
    alice.close();
    await ts.stop();
  });

  const capsOfNewLogin = async (): Promise<Element> => {
    const c = await RawClient.connect(ts);
    await c.open();
    await c.authenticate("alice", "password");
    const caps = (await c.open()).getChild("c", CAPS)!;
    c.close();
    return caps;
  };

  it("includes folded forms and items, serves folded nodes, and recomputes caps when features change", async () => {
    const before = await capsOfNewLogin();
    await ts.server.modules.load(extra);

    const res = await alice.iq(info("localhost"));
    assert.ok(features(res).includes("urn:example:extra"));
    assert.equal(forms(res).length, 1);
    const its = await alice.iq(items("localhost"));
    assert.deepEqual(its.getChild("query", ITEMS)!.getChildren("item").map((i) => i.attrs.jid), ["rooms.localhost"]);
    const nodeInfo = await alice.iq(info("localhost", "urn:example:node"));
    assert.equal(nodeInfo.getChild("query", INFO)!.attrs.node, "urn:example:node");
    assert.equal(identities(nodeInfo)[0].category, "automation");
    const nodeItems = await alice.iq(items("localhost", "urn:example:node"));
    assert.equal(nodeItems.getChild("query", ITEMS)!.getChildren("item").length, 1);
    // Folders that only serve the host leave account queries alone.
    assert.equal(forms(await alice.iq(info())).length, 0);

    const after = await capsOfNewLogin();
    assert.notEqual(after.attrs.ver, before.attrs.ver);
    assert.equal(capsVer(identities(res), features(res), forms(res)), after.attrs.ver);
    assert.equal((await alice.iq(info("localhost", `${after.attrs.node}#${after.attrs.ver}`))).attrs.type, "result");
    assert.equal(errorCondition(await alice.iq(info("localhost", `${before.attrs.node}#${before.attrs.ver}`))), "item-not-found");

    ts.server.modules.unload(extra.name);
    assert.equal((await capsOfNewLogin()).attrs.ver, before.attrs.ver);
    assert.ok(!features(await alice.iq(info("localhost"))).includes("urn:example:extra"));
  });

  it("recomputes the caps of new logins when a module adds a feature after its setup", async () => {
    let later: ((ns: string) => void) | null = null;
    const late = defineModule({ name: "disco-test-late", setup(api) { later = (ns) => api.addFeature(ns); } });
    await ts.server.modules.load(late);
    try {
      const before = await capsOfNewLogin();
      assert.equal((await capsOfNewLogin()).attrs.ver, before.attrs.ver);
      later!("urn:example:late");
      const after = await capsOfNewLogin();
      assert.notEqual(after.attrs.ver, before.attrs.ver);
      const res = await alice.iq(info("localhost"));
      assert.ok(features(res).includes("urn:example:late"));
      assert.equal(capsVer(identities(res), features(res), forms(res)), after.attrs.ver);
    } finally {
      ts.server.modules.unload(late.name);
    }
    assert.ok(!features(await alice.iq(info("localhost"))).includes("urn:example:late"));
  });

  it("takes the caps node from the module options", async () => {
    const other = await startTestServer({ modules: { disco: { capsNode: "https://example.org/hearth" } } });
    try {
      await other.accounts.create(other.host, "carol", "password");
      const c = await RawClient.connect(other);
      await c.open();
      await c.authenticate("carol", "password");
      assert.equal((await c.open()).getChild("c", CAPS)!.attrs.node, "https://example.org/hearth");
      c.close();
    } finally {
      await other.stop();
    }
  });
});

describe("XEP-0115 §5 verification string", () => {
  it("matches the simple example of §5.2", () => {
    const ids = [{ category: "client", type: "pc", name: "Exodus 0.9.1" }];
    const fs = [INFO, ITEMS, "http://jabber.org/protocol/muc", CAPS];
    assert.equal(verificationString(ids, fs),
      "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<");
    assert.equal(capsVer(ids, fs), "QgayPKawpkPSDYmwT/WM94uAlu0=");
  });

  it("matches the complex example of §5.3 (languages and an extended info form)", () => {
    const ids = [
      { category: "client", type: "pc", name: "Psi 0.11", lang: "en" },
      { category: "client", type: "pc", name: "Ψ 0.11", lang: "el" },
    ];
    const fs = [CAPS, INFO, ITEMS, "http://jabber.org/protocol/muc"];
    const form = ltx.parse(`<x xmlns='jabber:x:data' type='result'>
      <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
      <field var='ip_version' type='text-multi'><value>ipv6</value><value>ipv4</value></field>
      <field var='os'><value>Mac</value></field>
      <field var='os_version'><value>10.5.1</value></field>
      <field var='software'><value>Psi</value></field>
      <field var='software_version'><value>0.11</value></field>
    </x>`) as Element;
    assert.equal(capsVer(ids, fs, [form]), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
  });
});
