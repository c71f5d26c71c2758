// Self-tests of the benchmark's own plumbing (stanza framer, SCRAM client) and an
// end-to-end login + message round trip against the in-process fake server.
import assert from 'node:assert/strict';
import { StanzaFramer, attr, childText, innerText } from './xml-lite.js';
import { ScramClient, ScramKeyCache } from './scram.js';
import { startFakeServer } from './fake-server.js';
import { XmppClient } from './client.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString();

describe('bench: StanzaFramer', () => {
  const stream =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='x'>" +
    "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism></mechanisms></stream:features>" +
    '<message to="a@b" id=\'1\' note="x>y&apos;"><body>hi <![CDATA[<not a tag>]]> &lt;b&gt;</body><x xmlns="y"/></message>' +
    "<presence/>\n  <iq type='result' id='p1'/>" +
    "<stream:stream xmlns='jabber:client' id='restart'>" + // stream restart
    '<message><body>é ✓ 😀</body></message></stream:stream>';

  function run(chunks: string[]) {
    const ev: string[] = [];
    const f = new StanzaFramer({ stanza: (s) => ev.push(s), open: (h) => ev.push(`OPEN ${attr(h, 'id')}`), close: () => ev.push('CLOSE') });
    for (const c of chunks) f.push(c);
    return ev;
  }

  it('splits a stream into stanzas', () => {
    const ev = run([stream]);
    assert.equal(ev.length, 8);
    assert.equal(ev[0], 'OPEN x');
    assert.ok(ev[1]!.startsWith('<stream:features>') && ev[1]!.endsWith('</stream:features>'));
    assert.equal(attr(ev[2]!, 'note'), "x>y'");
    assert.equal(attr(ev[2]!, 'to'), 'a@b');
    assert.equal(childText(ev[2]!, 'body'), 'hi <![CDATA[<not a tag>]]> <b>');
    assert.equal(ev[3], '<presence/>');
    assert.equal(attr(ev[4]!, 'id'), 'p1');
    assert.equal(ev[5], 'OPEN restart');
    assert.equal(childText(ev[6]!, 'body'), 'é ✓ 😀');
    assert.equal(ev[7], 'CLOSE');
  });

  it('gives the same result however the input is cut', () => {
    const whole = run([stream]);
    for (let seed = 1; seed <= 300; seed++) {
      const chunks: string[] = [];
      let i = 0;
      let r = seed;
      while (i < stream.length) {
        r = (r * 1103515245 + 12345) & 0x7fffffff;
        const n = 1 + (r % (seed % 7 === 0 ? 3 : 40));
        chunks.push(stream.slice(i, i + n));
        i += n;
      }
      assert.deepEqual(run(chunks), whole, `seed ${seed}`);
    }
  });

  it('reads the text of SASL elements', () => {
    assert.equal(innerText("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1hYmM=</success>"), 'dj1hYmM=');
    assert.equal(innerText("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"), '');
  });
});

describe('bench: SCRAM client', () => {
  // RFC 5802 §5 and RFC 7677 §3 test vectors
  const vectors = [
    {
      hash: 'sha1' as const,
      cnonce: 'fyko+d2lbbFgONRv9qkxdawL',
      serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
      clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
      serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
    },
    {
      hash: 'sha256' as const,
      cnonce: 'rOprNGfwEbeRWgbNEkqO',
      serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
      clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
      serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
    },
  ];
  for (const v of vectors) {
    it(`matches the ${v.hash} test vector and caches the keys`, async () => {
      const cache = new ScramKeyCache();
      for (let k = 0; k < 2; k++) {
        const c = new ScramClient(v.hash, 'user', 'pencil', cache, v.cnonce);
        assert.equal(unb64(c.first()), `n,,n=user,r=${v.cnonce}`);
        assert.equal(unb64(await c.final(b64(v.serverFirst))), v.clientFinal);
        c.verifyServerFinal(b64(v.serverFinal));
        assert.throws(() => c.verifyServerFinal(b64('v=AAAA')), /mismatch/);
      }
      assert.equal(cache.derivations, 1);
    });
  }
});

describe('bench: client against the fake server', () => {
  it('registers, logs in and routes a message', async () => {
    const srv = await startFakeServer({ domain: 'bench.localhost', iterations: 1000 });
    const target = { host: '127.0.0.1', port: srv.port, domain: 'bench.localhost' };
    const cache = new ScramKeyCache();
    const clients: XmppClient[] = [];
    try {
      for (const u of ['user1', 'user2']) {
        const r = new XmppClient(target);
        assert.equal(await r.register(u, 'pw', 5000), 'created');
        r.destroy();
      }
      const again = new XmppClient(target);
      assert.equal(await again.register('user1', 'pw', 5000), 'exists');
      again.destroy();
      for (const [u, auth] of [['user1', 'scram'], ['user2', 'scram-sha-1']] as const) {
        const c = new XmppClient(target);
        clients.push(c);
        const info = await c.login(u, 'pw', { auth, cache, timeoutMs: 5000 });
        assert.match(info.jid, new RegExp(`^${u}@bench.localhost/`));
      }
      const got = new Promise<string>((resolve) => clients[1]!.setHot(resolve));
      clients[0]!.send("<message to='user2@bench.localhost' type='chat' id='m1'><body>hello</body></message>");
      const m = await got;
      assert.equal(childText(m, 'body'), 'hello');
      assert.equal(attr(m, 'from'), clients[0]!.jid);
      const bad = new XmppClient(target);
      await assert.rejects(bad.login('user1', 'wrong', { auth: 'scram', cache, timeoutMs: 5000 }), /failed/);
      bad.destroy();
    } finally {
      for (const c of clients) c.destroy();
      await srv.close();
    }
  });
});
