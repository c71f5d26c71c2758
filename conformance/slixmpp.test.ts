// Interop: slixmpp (Python, an independent implementation) and @xmpp/client (JavaScript) as contacts
// of each other on one hearth server, with STARTTLS required: subscription, presence, chat, offline.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { client, xml } from "@xmpp/client";
import { startTestServer, type TestServer } from "../test/helpers/server.js";

const PYTHON = "/usr/bin/python3";
const script = fileURLToPath(new URL("../../conformance/slixmpp/romeo.py", import.meta.url));
const blockingScript = fileURLToPath(new URL("../../conformance/slixmpp/blocking.py", import.meta.url));

function runPython(args: string[]): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    execFile(PYTHON, args, { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout)));
  });
}

type XmppClient = ReturnType<typeof client>;

async function xmppjs(ts: TestServer, username: string): Promise<XmppClient> {
  const c = client({ service: `xmpp://127.0.0.1:${ts.c2sPort}`, domain: "localhost", username, password: "password", resource: "xmppjs" });
  c.on("error", () => {});
  await c.start();
  return c;
}

describe("interop: slixmpp ⇄ @xmpp/client", function () {
  this.timeout(40_000);
  let ts: TestServer;
  before(async function () {
    assert.ok(existsSync(PYTHON), "Debian's /usr/bin/python3 is required (with python3-slixmpp)");
    // STARTTLS required, as on a real deployment; @xmpp/client negotiates it too.
    ts = await startTestServer({ c2s: { requireTls: true }, auth: { allowPlainInsecure: false } });
    for (const u of ["romeo", "juliet", "nurse"]) await ts.accounts.create("localhost", u, "password");
  });
  const tlsCheck = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
  after(async () => {
    await ts?.stop();
    if (tlsCheck === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = tlsCheck;
  });

  it("subscribes, sees presence, chats both ways and leaves an offline message", async () => {
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0"; // the test server's self-signed certificate
    const juliet = await xmppjs(ts, "juliet");
    const received: string[] = [];
    juliet.on("stanza", async (st) => {
      if (st.is("presence") && st.attrs.type === "subscribe") {
        await juliet.send(xml("presence", { to: st.attrs.from, type: "subscribed" }));
        await juliet.send(xml("presence", { to: st.attrs.from, type: "subscribe" }));
      }
      if (st.is("message") && st.getChildText("body")) {
        received.push(st.getChildText("body")!);
        await juliet.send(xml("message", { to: st.attrs.from, type: "chat" }, xml("body", {}, `echo: ${st.getChildText("body")}`)));
      }
    });
    // An "interested resource" (RFC 6121 §2.1.6) fetches its roster before it gets subscription requests.
    await juliet.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" }));
    await juliet.send(xml("presence"));

    const out = await runPython([script, "127.0.0.1", String(ts.c2sPort), "romeo@localhost", "password", "juliet@localhost", "nurse@localhost"]);
    const result = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(result.tls, true, "slixmpp negotiated STARTTLS");
    // slixmpp binds its SCRAM login to the TLS channel (tls-unique, see src/c2s/sasl/channel-binding.ts).
    assert.equal(result.mechanism, "SCRAM-SHA-256-PLUS");
    assert.equal(result.subscribed, true);
    // XEP-0386: xmpp.js binds through Bind2, where the server picks the resource after the client's tag.
    assert.match(result.peer_presence, /^juliet@localhost\/xmppjs\.[0-9a-f]+$/);
    assert.equal(result.echo, "echo: hello from slixmpp");
    assert.equal(result.roster["juliet@localhost"], "both");
    assert.deepEqual(received, ["hello from slixmpp"]);
    await juliet.stop();

    // The nurse was offline: the message waits for her.
    const nurse = await xmppjs(ts, "nurse");
    const offline = new Promise<any>((resolve) => nurse.on("stanza", (st) => { if (st.is("message")) resolve(st); }));
    await nurse.send(xml("presence"));
    const msg = await offline;
    assert.equal(msg.getChildText("body"), "wherefore art thou");
    assert.match(msg.attrs.from, /^romeo@localhost\//);
    assert.ok(msg.getChild("delay", "urn:xmpp:delay"));
    await nurse.stop();
  });

  it("blocks and unblocks with slixmpp's XEP-0191 plugin: list, pushes, disco feature", async () => {
    const out = await runPython([blockingScript, "127.0.0.1", String(ts.c2sPort), "juliet@localhost", "password", "tybalt@capulet.example"]);
    const result = JSON.parse(out.trim().split("\n").pop()!);
    assert.equal(result.features, true, "urn:xmpp:blocking is announced on the account");
    assert.deepEqual(result.before, []);
    assert.deepEqual(result.pushed, ["block", ["tybalt@capulet.example"]]);
    assert.deepEqual(result.during, ["tybalt@capulet.example"]);
    assert.deepEqual(result.unpushed, ["unblock", ["tybalt@capulet.example"]]);
    assert.deepEqual(result.after, []);
  });
});
