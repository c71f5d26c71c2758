// A deterministic, seeded mutation fuzz smoke (issue 9): valid stanzas, mutated (byte flips, deletions,
// truncations, prefix and namespace mutations, duplication), each sent on its own authenticated c2s
// connection and fenced with `</stream:stream>` (which ends the stream cleanly between stanzas and is a
// parse error anywhere else). An independent strict parser (saxes: XML 1.0 + Namespaces in XML) judges
// every input. The run fails on a crash, a hang (the recipient's ping not answered in time), any output a
// recipient (TCP and WebSocket) gets that saxes rejects, a stanza relayed from the part of an input after
// its first error, or a not-well-formed input closed without a stream error.
// FUZZ_SEED and FUZZ_N override the seed and the number of inputs.
import assert from "node:assert/strict";
import { SaxesParser } from "saxes";
import { startTestServer, type TestServer } from "./helpers/server.js";
import { WireClient } from "./helpers/wire-client.js";
import type { Element } from "../src/xml/element.js";

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);
const INPUTS = Number(process.env.FUZZ_N ?? 2000);
const PARALLEL = 4;
const STREAM_OPEN = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/** mulberry32: small, fast and the same everywhere. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const templates: Array<(to: string, id: string) => string> = [
  (to, id) => `<message to='${to}' id='${id}' type='chat'><body>hello ${id}</body></message>`,
  (to, id) => `<message to='${to}' id='${id}' type='chat' xml:lang='en'><body>a &amp; b &lt; c ${id}</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
  (to, id) => `<message to='${to}' id='${id}' type='chat' xmlns:e='urn:example:e'><body>${id}</body><e:x e:k='1'><e:y/></e:x></message>`,
  (to, id) => `<message to='${to}' id='${id}'><body>${id} 😀 ünï</body><x xmlns='urn:x'><p:y xmlns:p='urn:p' p:a='1' a='2'/></x><request xmlns='urn:xmpp:receipts'/></message>`,
  (to, id) => `<message to='${to}' id='${id}' type='chat'><body><![CDATA[<b>${id}</b>]]></body><stream:x/></message>`,
  (to, id) => `<presence to='${to}' id='${id}'><status>${id}</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></presence>`,
  (to, id) => `<iq to='${to}' id='${id}' type='result'><query xmlns='jabber:iq:version'><name>${id}</name></query></iq>`,
];

const snippets = [
  "foo:", " p:x='1'", " xmlns:p='urn:p'", " xmlns:xmlns='urn:x'", " xmlns:xml='urn:x'", " xmlns:a=''", " xmlns:e='urn:example:e'",
  " xmlns:x='http://www.w3.org/2000/xmlns/'", " xmlns='http://www.w3.org/XML/1998/namespace'", "<!--c-->", "<?pi x?>", "&amp;",
  "&bogus;", "]]>", "<![CDATA[x]]>", "\u0000", "<x/>", "</x>", "<e:z/>", "xml:", "xmlns:", " e:k='2'", "<stream:y/>", ":", "&#0;",
];
const bytesOfInterest = Buffer.from("<>&'\"/:=!?[]; ax\u0000\u0001", "latin1");
const rawBytes = [0x80, 0xff, 0xc0, 0xed, 0xf4];

function mutate(input: Buffer, random: () => number): Buffer {
  let b = input;
  const pick = (n: number) => Math.floor(random() * n);
  const rounds = 1 + pick(3);
  for (let r = 0; r < rounds; r++) {
    const at = pick(b.length + 1);
    switch (pick(8)) {
      case 0: { // byte flip
        if (b.length === 0) break;
        b = Buffer.from(b);
        b[Math.min(at, b.length - 1)] = random() < 0.2 ? rawBytes[pick(rawBytes.length)] : bytesOfInterest[pick(bytesOfInterest.length)];
        break;
      }
      case 1: // deletion
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + pick(8))]);
        break;
      case 2: // truncation
        b = b.subarray(0, at);
        break;
      case 3: { // insertion of something namespace- or markup-shaped
        b = Buffer.concat([b.subarray(0, at), Buffer.from(snippets[pick(snippets.length)]), b.subarray(at)]);
        break;
      }
      case 4: { // duplication of a slice
        const from = pick(b.length + 1);
        const slice = b.subarray(from, from + 1 + pick(40));
        b = Buffer.concat([b.subarray(0, at), slice, b.subarray(at)]);
        break;
      }
      case 5: { // prefix an element name, or drop a namespace declaration
        const s = b.toString("latin1");
        const next = random() < 0.5
          ? s.replace(/<([a-z])/g, (m, c: string, offset: number) => (offset >= at && offset < at + 40 ? `<q:${c}` : m))
          : s.replace(/ xmlns(:\w+)?='[^']*'/, "");
        b = Buffer.from(next, "latin1");
        break;
      }
      case 6: { // duplicate an attribute, directly or through a second prefix of the same namespace
        const s = b.toString("latin1");
        const m = / ([\w:]+)='([^'<]*)'/.exec(s.slice(at)) ?? / ([\w:]+)='([^'<]*)'/.exec(s);
        if (m === null) break;
        const name = m[1].includes(":") && random() < 0.5 ? `z:${m[1].split(":")[1]}` : m[1];
        const extra = name.startsWith("z:") ? ` xmlns:z='urn:example:e' ${name}='${m[2]}'` : ` ${name}='${m[2]}'`;
        const pos = s.indexOf(m[0]) + m[0].length;
        b = Buffer.from(s.slice(0, pos) + extra + s.slice(pos), "latin1");
        break;
      }
      default: // a second stanza glued on
        b = Buffer.concat([b, b.subarray(0, pick(b.length + 1))]);
    }
  }
  return b;
}

interface Verdict {
  /** saxes found the input (between a stream header and the fence) not namespace-well-formed. */
  bad: boolean;
  /** ids of the stanzas that were complete before the first error (these may be routed). */
  completeIds: Set<string>;
}

/** `</stream:stream>`, after closing a CDATA section the input left open (which would swallow the fence). */
function fence(input: Buffer): Buffer {
  const s = input.toString("latin1");
  const open = s.lastIndexOf("<![CDATA[");
  return Buffer.from(open >= 0 && s.indexOf("]]>", open + 9) < 0 ? "]]></stream:stream>" : "</stream:stream>");
}

function judge(input: Buffer): Verdict {
  const completeIds = new Set<string>();
  let text: string;
  try { text = new TextDecoder("utf-8", { fatal: true }).decode(input); } catch { return { bad: true, completeIds }; }
  const sax = new SaxesParser({ xmlns: true });
  let bad = false;
  let depth = 0;
  let stanzaId: string | undefined;
  sax.on("error", () => { bad = true; });
  sax.on("opentag", (tag) => {
    if (bad) return;
    if (++depth === 2) stanzaId = (tag.attributes as Record<string, { value: string }>).id?.value;
  });
  sax.on("closetag", () => {
    if (bad) return;
    if (depth-- === 2 && stanzaId !== undefined) completeIds.add(stanzaId);
  });
  try { sax.write(STREAM_OPEN).write(text).close(); } catch { bad = true; }
  return { bad, completeIds };
}

describe("fuzz smoke: mutated stanzas over real sockets (issue 9)", function () {
  this.timeout(120_000);
  let ts: TestServer;
  before(async () => { ts = await startTestServer(); });
  after(() => ts.stop());

  it(`${INPUTS} inputs from seed ${SEED}: no crash, no hang, no unparseable output, nothing not-well-formed relayed`, async () => {
    for (const name of ["sender", "recipient"]) await ts.accounts.create(ts.host, name, "password");
    const tcp = await WireClient.connect(ts, "tcp");
    await tcp.login("recipient", "password", { resource: "tcp" });
    const ws = await WireClient.connect(ts, "ws");
    await ws.login("recipient", "password", { resource: "ws" });
    for (const c of [tcp, ws]) {
      c.send("<presence/>");
      await c.receive((el) => el.name === "presence");
    }
    const targets = ["recipient@localhost", tcp.jid, ws.jid];

    const random = rng(SEED);
    const inputs: Buffer[] = [];
    const verdicts: Verdict[] = [];
    for (let n = 0; n < INPUTS; n++) {
      const template = templates[n % templates.length];
      const input = mutate(Buffer.from(template(targets[n % targets.length], `fz${n}`)), random);
      const fenced = Buffer.concat([input, fence(input)]);
      inputs.push(fenced);
      verdicts.push(judge(fenced));
    }

    const failures: string[] = [];
    const started = Date.now();
    let next = 0;
    const worker = async () => {
      while (next < INPUTS) {
        const n = next++;
        const sender = await WireClient.connect(ts, "tcp");
        await sender.login("sender", "password", { resource: `w${n}` });
        sender.send(inputs[n]);
        try {
          await sender.closed(5000);
        } catch {
          failures.push(`input ${n} (${JSON.stringify(inputs[n].toString("latin1"))}): the stream did not end`);
        }
        if (verdicts[n].bad && sender.streamError === null) failures.push(`input ${n} is not namespace-well-formed, but no stream error: ${JSON.stringify(inputs[n].toString("latin1"))}`);
        sender.close();
        if (n % 250 === 249) await tcp.ping(5000);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    await tcp.ping(5000);
    await ws.ping(5000);

    for (const c of [tcp, ws]) {
      assert.deepEqual(c.check.errors, [], `${c.endpoint} recipient received output saxes rejects`);
      assert.equal(c.closedNow, false);
      for (const el of c.received as Element[]) {
        const id = el.attrs.id;
        const m = /^fz(\d+)$/.exec(id ?? "");
        if (m === null) continue;
        const n = Number(m[1]);
        if (verdicts[n].bad && !verdicts[n].completeIds.has(id)) failures.push(`input ${n} was relayed past its first error: ${JSON.stringify(inputs[n].toString("latin1"))}`);
      }
    }
    assert.deepEqual(failures.slice(0, 10), []);
    const bad = verdicts.filter((v) => v.bad).length;
    // The mutations must exercise both sides; the run must stay a smoke test.
    assert.ok(bad > INPUTS / 4 && bad < INPUTS, `${bad} of ${INPUTS} inputs were not well-formed`);
    assert.ok(tcp.received.length + ws.received.length > INPUTS / 10, "a good share of the inputs were relayed");
    assert.ok(Date.now() - started < 60_000, `the run took ${Date.now() - started} ms`);
  });
});
