// Throughput of src/xml/parser.ts against ltx on the same stream: 100,000 chat messages in 16 KiB chunks.
//   npx tsc -p . && node dist/test/bench/parser-bench.js
import * as ltx from "ltx";
import xmppXml from "@xmpp/xml";
import { StreamParser } from "../../src/xml/parser.js";

const STANZAS = 100_000;
const CHUNK = 16 * 1024;
const ROUNDS = 5;

const stanza = "<message to='a@b' from='c@d/r' type='chat' id='abc123'><body>hello world</body></message>";
const header = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='b' version='1.0'>";
const input = Buffer.from(header + stanza.repeat(STANZAS) + "</stream:stream>");
const chunks: Buffer[] = [];
for (let off = 0; off < input.length; off += CHUNK) chunks.push(input.subarray(off, off + CHUNK));

function ours(): number {
  let count = 0;
  const parser = new StreamParser({
    onStreamStart() {},
    onStanza() {
      count++;
    },
    onStreamEnd() {},
    onError(err) {
      throw err;
    },
  });
  for (const c of chunks) parser.write(c);
  parser.end();
  return count;
}

// ltx's Parser builds the whole document and emits it once, at end(): its stanzas are the root's children.
function ltxTree(): number {
  let count = 0;
  const parser = new ltx.Parser();
  parser.on("tree", (root: ltx.Element) => {
    count = root.getChildElements().length;
  });
  parser.on("error", (err: Error) => {
    throw err;
  });
  for (const c of chunks) parser.write(c);
  parser.end("");
  return count;
}

// @xmpp/xml's Parser is ltx's tokenizer with an 'element' event per depth-1 child, as a stream needs.
function xmppJs(): number {
  let count = 0;
  const parser = new xmppXml.Parser();
  parser.on("element", () => {
    count++;
  });
  parser.on("error", (err: Error) => {
    throw err;
  });
  for (const c of chunks) parser.write(c);
  return count;
}

function measure(name: string, parse: () => number): void {
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    const count = parse();
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (count !== STANZAS) throw new Error(`${name}: parsed ${count} stanzas, expected ${STANZAS}`);
    best = Math.min(best, ms);
  }
  const perSecond = Math.round((STANZAS / best) * 1000);
  const mbPerSecond = (input.length / best / 1000).toFixed(0);
  console.log(`${name.padEnd(28)} ${perSecond.toLocaleString("en-US").padStart(11)} stanzas/s  ${mbPerSecond.padStart(4)} MB/s  (best of ${ROUNDS}: ${best.toFixed(1)} ms)`);
}

console.log(`${STANZAS} stanzas, ${(input.length / 1e6).toFixed(1)} MB in ${chunks.length} chunks of ${CHUNK} bytes`);
measure("hearth StreamParser", ours);
measure("ltx Parser (whole tree)", ltxTree);
measure("@xmpp/xml Parser (ltx)", xmppJs);
