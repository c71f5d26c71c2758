// The store contract (src/storage/types.ts) as one suite, run against every driver. It uses only the
// contract, and fresh names in every test, so it holds on a database that other tests have written to.
import assert from "node:assert/strict";
import type { AppendResult, AppendSink, ConversationState, NewTimelineEntry, RosterItem, Store, StoredCredentials } from "../src/storage/types.js";

let counter = 0;
/** A host no other test (or earlier run against a persistent database) has used. */
function freshHost(): string {
  return `t${Date.now().toString(36)}-${(counter++).toString(36)}.example`;
}

const credentials: StoredCredentials = {
  "SHA-256": { salt: "c2FsdA==", iterations: 4096, storedKey: "c3RvcmVk", serverKey: "c2VydmVy" },
};

function rosterItem(jid: string, overrides: Partial<RosterItem> = {}): RosterItem {
  return {
    jid, name: null, subscription: "none", askOut: false, pendingIn: null, approved: false, inRoster: true,
    groups: [], ...overrides,
  };
}

let stanzaCounter = 0;
function entry(owner: string, peer: string, overrides: Partial<NewTimelineEntry> = {}): NewTimelineEntry {
  return {
    owner, peer, outgoing: false, stanzaId: `sid-${(stanzaCounter++).toString(36)}`, originId: null,
    ts: 1_700_000_000_000, xml: `<message from='${peer}' to='${owner}'><body>hi</body></message>`, pending: false,
    archived: true, searchText: null, ...overrides,
  };
}

/** The sender's and the recipient's rows of one 1:1 message, as the router appends them. */
function message(from: string, to: string, originId: string | null, ts = 1_700_000_000_000): NewTimelineEntry[] {
  return [
    entry(from, to, { outgoing: true, originId, ts }),
    entry(to, from, { outgoing: false, originId, ts, pending: true }),
  ];
}

function state(overrides: Partial<ConversationState> = {}): ConversationState {
  return {
    last: 0, lastTs: 0, read: 0, unread: 0, pinned: false, muted: false, peerRead: 0, peerDelivered: 0, group: false,
    ...overrides,
  };
}

function assertIncreasing(seqs: number[]): void {
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `seq ${seqs[i]} after ${seqs[i - 1]}`);
}

export function storeContract(name: string, open: () => Promise<Store> | Store, cleanup?: () => Promise<void>): void {
  describe(`store contract: ${name}`, function () {
    let store: Store;
    let host: string;
    let alice: string, bob: string, carol: string;

    beforeEach(async function () {
      store = await open();
      host = freshHost();
      alice = `alice@${host}`;
      bob = `bob@${host}`;
      carol = `carol@${host}`;
    });
    afterEach(async function () {
      await store.close();
      await cleanup?.();
    });

    it("names its driver", function () {
      assert.equal(typeof store.driver, "string");
      assert.ok(store.driver.length > 0);
    });

    describe("accounts", function () {
      it("creates an account once and reads it back", async function () {
        const before = Date.now();
        assert.equal(await store.accounts.create(host, "alice", credentials), true);
        assert.equal(await store.accounts.create(host, "alice", {}), false, "a duplicate is refused");
        const account = await store.accounts.get(host, "alice");
        assert.ok(account !== null);
        assert.equal(account.host, host);
        assert.equal(account.username, "alice");
        assert.deepEqual(account.credentials, credentials, "the duplicate did not overwrite");
        assert.ok(account.createdAt >= before - 1000 && account.createdAt <= Date.now() + 1000);
      });

      it("returns null for an unknown account", async function () {
        assert.equal(await store.accounts.get(host, "nobody"), null);
      });

      it("replaces credentials of existing accounts only", async function () {
        await store.accounts.create(host, "alice", credentials);
        const next: StoredCredentials = {
          "SHA-1": { salt: "bmV3", iterations: 10000, storedKey: "YQ==", serverKey: "Yg==" },
        };
        assert.equal(await store.accounts.setCredentials(host, "alice", next), true);
        assert.deepEqual((await store.accounts.get(host, "alice"))?.credentials, next);
        assert.equal(await store.accounts.setCredentials(host, "nobody", next), false);
        assert.equal(await store.accounts.get(host, "nobody"), null);
      });

      it("lists the usernames of one host", async function () {
        const other = freshHost();
        await store.accounts.create(host, "bob", credentials);
        await store.accounts.create(host, "alice", credentials);
        await store.accounts.create(other, "carol", credentials);
        assert.deepEqual([...await store.accounts.list(host)].sort(), ["alice", "bob"]);
        assert.deepEqual(await store.accounts.list(other), ["carol"]);
        assert.deepEqual(await store.accounts.list(freshHost()), []);
      });

      it("deletes an account with everything it owns, and nothing else", async function () {
        await store.accounts.create(host, "alice", credentials);
        await store.accounts.create(host, "bob", credentials);
        await store.roster.put(alice, rosterItem(bob));
        await store.roster.put(bob, rosterItem(alice));
        await store.timeline.append(message(alice, bob, "m1"));
        await store.timeline.append(message(bob, alice, "m2"));
        await store.keyValue("private").set(alice, "k", "alice's");
        await store.keyValue("private").set(bob, "k", "bob's");
        await store.blockLists.add(alice, [carol]);
        await store.blockLists.add(bob, [carol]);
        await store.conversations.update(alice, bob, () => state({ unread: 1 }));
        await store.conversations.update(bob, alice, () => state({ unread: 2 }));
        await store.conversations.recall(alice, 1, 2);
        await store.conversations.recall(bob, 1, 2);

        assert.equal(await store.accounts.delete(host, "alice"), true);
        assert.equal(await store.accounts.delete(host, "alice"), false, "already gone");
        assert.equal(await store.accounts.get(host, "alice"), null);
        assert.deepEqual(await store.accounts.list(host), ["bob"]);
        assert.deepEqual((await store.roster.get(alice)).items, []);
        assert.equal(await store.roster.getItem(alice, bob), null);
        assert.deepEqual(await store.timeline.query(alice, { limit: 100 }), []);
        assert.equal(await store.timeline.countPending(alice), 0);
        assert.equal(await store.keyValue("private").get(alice, "k"), null);
        assert.deepEqual(await store.blockLists.list(alice), []);
        assert.equal(await store.conversations.get(alice, bob), null);
        assert.deepEqual(await store.conversations.recalls(alice), new Map());

        assert.ok(await store.accounts.get(host, "bob"));
        assert.deepEqual(await store.blockLists.list(bob), [carol]);
        assert.equal((await store.conversations.get(bob, alice))?.unread, 2);
        assert.deepEqual(await store.conversations.recalls(bob), new Map([[1, 2]]));
        assert.equal((await store.roster.get(bob)).items.length, 1);
        assert.equal((await store.timeline.query(bob, { limit: 100 })).length, 2);
        assert.equal(await store.keyValue("private").get(bob, "k"), "bob's");
      });

      it("never reuses a deleted account's timeline seqs or roster versions", async function () {
        await store.accounts.create(host, "alice", credentials);
        const [first] = await store.timeline.append([entry(alice, bob)]);
        const version = await store.roster.put(alice, rosterItem(bob));
        await store.accounts.delete(host, "alice");
        await store.accounts.create(host, "alice", credentials);
        const [again] = await store.timeline.append([entry(alice, bob)]);
        assert.ok(again.seq > first.seq, `seq ${again.seq} after ${first.seq}`);
        assert.ok(await store.timeline.lastSeq(alice) >= again.seq);
        assert.ok(await store.roster.put(alice, rosterItem(bob)) > version);
      });

      it("never reuses a deleted account's conversation list versions", async function () {
        await store.accounts.create(host, "alice", credentials);
        const { conversation } = await store.conversations.update(alice, bob, () => state({ unread: 1 }));
        await store.accounts.delete(host, "alice");
        await store.accounts.create(host, "alice", credentials);
        assert.equal(await store.conversations.get(alice, bob), null);
        const { conversation: again } = await store.conversations.update(alice, bob, () => state({ unread: 1 }));
        assert.ok(again!.version > conversation!.version, "a client that synced the old list sees the new row");
      });
    });

    describe("roster", function () {
      it("starts empty at version 0", async function () {
        assert.deepEqual(await store.roster.get(alice), { version: 0, items: [] });
        assert.equal(await store.roster.getItem(alice, bob), null);
      });

      it("stores every field of an item", async function () {
        const item = rosterItem(bob, {
          name: "Bob", subscription: "both", askOut: true, pendingIn: `<presence from='${bob}' type='subscribe'/>`,
          approved: true, inRoster: false, groups: ["Friends", "Work ünicode"],
        });
        await store.roster.put(alice, item);
        assert.deepEqual(await store.roster.getItem(alice, bob), item);
        assert.deepEqual((await store.roster.get(alice)).items, [item]);
        for (const subscription of ["none", "to", "from", "both"] as const) {
          const plain = rosterItem(carol, { subscription });
          await store.roster.put(alice, plain);
          assert.deepEqual(await store.roster.getItem(alice, carol), plain);
        }
      });

      it("increments the version on every put and on removals", async function () {
        const v1 = await store.roster.put(alice, rosterItem(bob));
        const v2 = await store.roster.put(alice, rosterItem(carol));
        assert.ok(v1 > 0);
        assert.ok(v2 > v1);
        assert.equal((await store.roster.get(alice)).version, v2);

        const v3 = await store.roster.put(alice, rosterItem(bob, { name: "Bobby", subscription: "to" }));
        assert.ok(v3 > v2, "a replacement is a change");
        const roster = await store.roster.get(alice);
        assert.equal(roster.version, v3);
        assert.deepEqual(roster.items.map((i) => i.jid).sort(), [bob, carol].sort());
        assert.deepEqual(roster.items.find((i) => i.jid === bob), rosterItem(bob, { name: "Bobby", subscription: "to" }));

        const v4 = await store.roster.remove(alice, bob);
        assert.ok(v4 > v3);
        assert.equal(await store.roster.getItem(alice, bob), null);
        assert.deepEqual(await store.roster.get(alice), { version: v4, items: [rosterItem(carol)] });
        assert.equal(await store.roster.remove(alice, bob), v4, "removing nothing changes nothing");
        assert.equal((await store.roster.get(alice)).version, v4);
      });

      it("serializes read-modify-write of one roster across two store clients (lock), 25 changes each", async function () {
        const other = await open();
        try {
          const addGroup = (s: Store, group: string) => s.roster.lock(alice, async () => {
            const item = (await s.roster.getItem(alice, bob)) ?? { jid: bob, name: null, subscription: "none" as const, askOut: false, pendingIn: null, approved: false, inRoster: true, groups: [] };
            // A turn of the event loop between the read and the write, as a real change has.
            await new Promise((r) => setImmediate(r));
            await s.roster.put(alice, { ...item, groups: [...item.groups, group] });
          });
          await Promise.all([store, other].flatMap((s, n) => Array.from({ length: 25 }, (_, i) => addGroup(s, `g${n}-${i}`))));
          const item = await other.roster.getItem(alice, bob);
          assert.equal(item?.groups.length, 50, "no change was lost");
          // A lock whose holder failed is released, and other owners never wait for it.
          await assert.rejects(store.roster.lock(alice, async () => { throw new Error("boom"); }), /boom/);
          assert.equal(await other.roster.lock(alice, async () => "free"), "free");
          assert.equal(await Promise.race([store.roster.lock(carol, async () => "independent"), other.roster.lock(alice, () => new Promise<string>(() => {}))]), "independent");
        } finally {
          await other.close();
        }
      });

      it("keeps the rosters of different owners apart", async function () {
        await store.roster.put(alice, rosterItem(carol, { name: "from alice" }));
        await store.roster.put(alice, rosterItem(bob));
        const bobVersion = await store.roster.put(bob, rosterItem(carol, { name: "from bob" }));
        assert.equal((await store.roster.getItem(alice, carol))?.name, "from alice");
        assert.equal((await store.roster.getItem(bob, carol))?.name, "from bob");
        assert.equal((await store.roster.get(bob)).version, bobVersion);
        await store.roster.remove(alice, carol);
        assert.equal((await store.roster.getItem(bob, carol))?.name, "from bob");
        assert.equal((await store.roster.get(bob)).version, bobVersion);
        assert.equal(await store.roster.remove(carol, bob), 0, "an empty roster stays at version 0");
      });
    });

    describe("timeline", function () {
      it("stores every field and gives the owner's next seq", async function () {
        const input = entry(alice, bob, {
          outgoing: true, originId: "o-1", ts: 1_700_000_123_456, pending: true,
          xml: "<message xmlns='jabber:client' to='b'><body>&lt;ünïcødé ✓&gt;</body></message>",
        });
        const [result] = await store.timeline.append([input]);
        assert.deepEqual(result, { ...input, seq: result.seq, duplicate: false });
        assert.ok(Number.isInteger(result.seq) && result.seq > 0);
        assert.equal(await store.timeline.lastSeq(alice), result.seq);
        const { duplicate: _, ...stored } = result;
        assert.deepEqual(await store.timeline.query(alice, { limit: 10 }), [stored]);
      });

      it("returns an empty result for an empty append", async function () {
        assert.deepEqual(await store.timeline.append([]), []);
      });

      it("allocates strictly increasing seqs per owner, independently of other owners", async function () {
        assert.equal(await store.timeline.lastSeq(alice), 0, "no seq before the first entry");
        const seqs: Record<string, number[]> = { [alice]: [], [bob]: [] };
        for (let i = 0; i < 5; i++) {
          for (const result of await store.timeline.append(message(alice, bob, null))) seqs[result.owner].push(result.seq);
        }
        const bobLast = await store.timeline.lastSeq(bob);
        for (let i = 0; i < 5; i++) {
          for (const result of await store.timeline.append([entry(alice, carol)])) seqs[result.owner].push(result.seq);
        }
        assertIncreasing(seqs[alice]);
        assertIncreasing(seqs[bob]);
        assert.equal(seqs[alice].length, 10);
        assert.equal(await store.timeline.lastSeq(alice), seqs[alice][9]);
        assert.equal(await store.timeline.lastSeq(bob), bobLast, "alice's entries do not advance bob's seq");
        assert.equal(bobLast, seqs[bob][4]);
        assert.equal(await store.timeline.lastSeq(carol), 0);
      });

      it("writes the entries of one call together and returns them in order", async function () {
        const results = await store.timeline.append([entry(alice, bob), entry(bob, alice), entry(alice, carol)]);
        assert.deepEqual(results.map((r) => r.owner), [alice, bob, alice]);
        assert.ok(results[2].seq > results[0].seq);
        assert.ok(results.every((r) => r.duplicate === false));
      });

      it("resolves every one of many appends made in one tick, in call order", async function () {
        const calls: Array<ReturnType<Store["timeline"]["append"]>> = [];
        for (let i = 0; i < 300; i++) calls.push(store.timeline.append(message(i % 2 ? alice : carol, bob, `tick-${i}`)));
        const results = await Promise.all(calls);
        assert.equal(results.length, 300);
        const bySeqOwner: Record<string, number[]> = {};
        results.forEach((pair, i) => {
          assert.equal(pair.length, 2);
          assert.equal(pair[0].originId, `tick-${i}`);
          assert.equal(pair[1].originId, `tick-${i}`);
          for (const r of pair) {
            assert.equal(r.duplicate, false);
            (bySeqOwner[r.owner] ??= []).push(r.seq);
          }
        });
        assert.equal(bySeqOwner[bob].length, 300);
        assertIncreasing(bySeqOwner[bob]);
        assertIncreasing(bySeqOwner[alice]);
        assertIncreasing(bySeqOwner[carol]);
        assert.equal(await store.timeline.lastSeq(bob), bySeqOwner[bob][299]);
        assert.equal((await store.timeline.query(bob, { limit: 1000 })).length, 300);
      });

      it("answers appendTo's sink after the call returns, once per append, as append() resolves", async function () {
        const answers: Array<{ i: number; rows?: AppendResult[]; err?: unknown }> = [];
        const sink = (i: number): AppendSink => ({
          committed: (rows) => answers.push({ i, rows }),
          failed: (err) => answers.push({ i, err }),
        });
        for (let i = 0; i < 20; i++) store.timeline.appendTo(message(alice, bob, `sink-${i}`), sink(i));
        // One the store refuses (an entry without its text): its sink hears of it, later too.
        store.timeline.appendTo([{ ...entry(alice, bob), xml: undefined as unknown as string }], sink(20));
        assert.equal(answers.length, 0, "a sink was answered before appendTo returned");
        await store.timeline.append([entry(carol, bob)]);
        while (answers.length < 21) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual(answers.map((a) => a.i).sort((a, b) => a - b), Array.from({ length: 21 }, (_, i) => i));
        const refused = answers.find((a) => a.i === 20)!;
        assert.ok(refused.err instanceof TypeError, String(refused.err));
        const written = answers.filter((a) => a.i < 20).sort((a, b) => a.i - b.i);
        for (const a of written) {
          assert.equal(a.rows!.length, 2);
          assert.equal(a.rows![0].originId, `sink-${a.i}`);
          assert.equal(a.rows![1].duplicate, false);
        }
        assert.equal(new Set(written.map((a) => a.rows![1].seq)).size, 20);
        assert.equal((await store.timeline.query(bob, { limit: 100 })).filter((e) => e.originId?.startsWith("sink-")).length, 20);
      });

      it("does not write a resent message again (across calls)", async function () {
        const [sent, received] = await store.timeline.append(message(alice, bob, "resend-1"));
        const aliceLast = await store.timeline.lastSeq(alice);
        const bobLast = await store.timeline.lastSeq(bob);
        const again = await store.timeline.append(message(alice, bob, "resend-1"));
        assert.deepEqual(again, [{ ...sent, duplicate: true }, { ...received, duplicate: true }],
          "the stored entries come back, stanza ids and all");
        assert.equal(await store.timeline.lastSeq(alice), aliceLast, "no seq spent on a duplicate");
        assert.equal(await store.timeline.lastSeq(bob), bobLast);
        assert.equal((await store.timeline.query(alice, { limit: 10 })).length, 1);
        assert.equal((await store.timeline.query(bob, { limit: 10 })).length, 1);
        assert.equal(await store.timeline.countPending(bob), 1);
      });

      it("does not write a resent message again (in one tick, and in one call)", async function () {
        const [first, second] = await Promise.all([
          store.timeline.append(message(alice, bob, "same-tick")),
          store.timeline.append(message(alice, bob, "same-tick")),
        ]);
        assert.deepEqual(first.map((r) => r.duplicate), [false, false]);
        assert.deepEqual(second, first.map((r) => ({ ...r, duplicate: true })));

        const inOneCall = await store.timeline.append([...message(alice, bob, "same-call"), ...message(alice, bob, "same-call")]);
        assert.deepEqual(inOneCall.map((r) => r.duplicate), [false, false, true, true]);
        assert.deepEqual(inOneCall[2], { ...inOneCall[0], duplicate: true });
        assert.deepEqual(inOneCall[3], { ...inOneCall[1], duplicate: true });
        assert.equal((await store.timeline.query(alice, { limit: 10 })).length, 2);
        assert.equal((await store.timeline.query(bob, { limit: 10 })).length, 2);
      });

      it("tells origin-ids apart by direction and by peer", async function () {
        // Senders choose origin-ids independently: the same id from two senders is two messages.
        const fromAlice = await store.timeline.append(message(alice, carol, "1"));
        const fromBob = await store.timeline.append(message(bob, carol, "1"));
        assert.deepEqual([...fromAlice, ...fromBob].map((r) => r.duplicate), [false, false, false, false]);
        assert.equal((await store.timeline.query(carol, { limit: 10 })).length, 2);
        // A message to oneself is one outgoing and one incoming row with the same origin-id.
        const toSelf = await store.timeline.append(message(alice, alice, "self"));
        assert.deepEqual(toSelf.map((r) => r.duplicate), [false, false]);
        assert.notEqual(toSelf[0].seq, toSelf[1].seq);
        // The same origin-id sent to someone else is a new message, not a resend of the first.
        const toOther = await store.timeline.append(message(alice, bob, "1"));
        assert.deepEqual(toOther.map((r) => r.duplicate), [false, false]);
        assert.equal(toOther[0].peer, bob);
        assert.ok(toOther[0].seq > fromAlice[0].seq);
        assert.equal((await store.timeline.append(message(alice, bob, "1")))[0].seq, toOther[0].seq, "and its own resend is deduplicated");
      });

      it("never deduplicates entries without an origin-id", async function () {
        const results = await store.timeline.append([...message(alice, bob, null), ...message(alice, bob, null)]);
        assert.deepEqual(results.map((r) => r.duplicate), [false, false, false, false]);
        assert.equal((await store.timeline.query(alice, { limit: 10 })).length, 2);
      });

      it("lists pending entries oldest first and clears them on delivery", async function () {
        const received: number[] = [];
        for (let i = 0; i < 5; i++) {
          const [, r] = await store.timeline.append(message(alice, bob, `p-${i}`));
          received.push(r.seq);
        }
        await store.timeline.append([entry(bob, carol, { outgoing: true })]); // not pending
        await store.timeline.append([entry(carol, bob, { pending: true })]);  // another owner

        assert.equal(await store.timeline.countPending(bob), 5);
        assert.equal(await store.timeline.countPending(alice), 0);
        assert.deepEqual((await store.timeline.pending(bob, 100)).map((e) => e.seq), received);
        assert.deepEqual((await store.timeline.pending(bob, 2)).map((e) => e.seq), received.slice(0, 2));
        const [oldest] = await store.timeline.pending(bob, 1);
        assert.equal(oldest.pending, true);
        assert.equal(oldest.originId, "p-0");
        assert.equal(oldest.peer, alice);
        assert.equal(oldest.outgoing, false);

        await store.timeline.markDelivered(bob, [received[0], received[2]]);
        assert.deepEqual((await store.timeline.pending(bob, 100)).map((e) => e.seq), [received[1], received[3], received[4]]);
        assert.equal(await store.timeline.countPending(bob), 3);
        const all = await store.timeline.query(bob, { limit: 100 });
        assert.equal(all.length, 6, "delivered entries stay in the timeline");
        assert.equal(all.find((e) => e.seq === received[0])?.pending, false);

        await store.timeline.markDelivered(bob, []);
        await store.timeline.markDelivered(bob, [received[0], 999_999]); // already delivered, unknown
        await store.timeline.markDelivered(alice, [received[1]]);         // someone else's seq
        assert.equal(await store.timeline.countPending(bob), 3);
        assert.equal(await store.timeline.countPending(carol), 1);
        await store.timeline.markDelivered(bob, [received[1], received[3], received[4]]);
        assert.equal(await store.timeline.countPending(bob), 0);
        assert.deepEqual(await store.timeline.pending(bob, 100), []);
        assert.equal(await store.timeline.countPending(carol), 1);
      });

      it("makes delivered entries pending again (a session or cluster node ended before receiving them)", async function () {
        const seqs: number[] = [];
        for (let i = 0; i < 3; i++) seqs.push((await store.timeline.append(message(alice, bob, `mp-${i}`)))[1].seq);
        await store.timeline.markDelivered(bob, seqs);
        await store.timeline.markPending(bob, [seqs[2], seqs[0]]);
        assert.deepEqual((await store.timeline.pending(bob, 100)).map((e) => e.seq), [seqs[0], seqs[2]]);
        await store.timeline.markPending(bob, []);
        await store.timeline.markPending(bob, [seqs[0], 999_999]); // already pending, unknown
        await store.timeline.markPending(carol, [seqs[1]]);        // someone else's seq
        assert.equal(await store.timeline.countPending(bob), 2);
        assert.equal(await store.timeline.countPending(carol), 0);
      });

      describe("query", function () {
        // alice's timeline: 10 entries alternating bob/carol, ts 1000, 2000, … 10000.
        let seqs: number[];
        beforeEach(async function () {
          seqs = [];
          for (let i = 0; i < 10; i++) {
            const [r] = await store.timeline.append([entry(alice, i % 2 === 0 ? bob : carol, { ts: (i + 1) * 1000, outgoing: i % 3 === 0 })]);
            seqs.push(r.seq);
          }
          await store.timeline.append([entry(bob, alice, { ts: 5000 })]); // another owner's timeline
        });
        const seqsOf = async (q: Parameters<Store["timeline"]["query"]>[1]): Promise<number[]> =>
          (await store.timeline.query(alice, q)).map((e) => e.seq);

        it("returns the whole timeline oldest first, as stored", async function () {
          const all = await store.timeline.query(alice, { limit: 100 });
          assert.deepEqual(all.map((e) => e.seq), seqs);
          assert.ok(all.every((e) => e.owner === alice));
          assert.deepEqual(all.map((e) => e.ts), [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000]);
          assert.deepEqual(all.map((e) => e.outgoing), [true, false, false, true, false, false, true, false, false, true]);
        });

        it("filters by peer", async function () {
          assert.deepEqual(await seqsOf({ with: bob, limit: 100 }), [seqs[0], seqs[2], seqs[4], seqs[6], seqs[8]]);
          assert.deepEqual(await seqsOf({ with: carol, limit: 100 }), [seqs[1], seqs[3], seqs[5], seqs[7], seqs[9]]);
          assert.deepEqual(await seqsOf({ with: `dave@${host}`, limit: 100 }), []);
        });

        it("filters by seq, exclusive", async function () {
          assert.deepEqual(await seqsOf({ afterSeq: seqs[6], limit: 100 }), seqs.slice(7));
          assert.deepEqual(await seqsOf({ beforeSeq: seqs[3], limit: 100 }), seqs.slice(0, 3));
          assert.deepEqual(await seqsOf({ afterSeq: seqs[2], beforeSeq: seqs[5], limit: 100 }), [seqs[3], seqs[4]]);
          assert.deepEqual(await seqsOf({ afterSeq: seqs[9], limit: 100 }), []);
          assert.deepEqual(await seqsOf({ afterSeq: 0, limit: 100 }), seqs);
        });

        it("filters by time, inclusive", async function () {
          assert.deepEqual(await seqsOf({ start: 3000, limit: 100 }), seqs.slice(2));
          assert.deepEqual(await seqsOf({ end: 3000, limit: 100 }), seqs.slice(0, 3));
          assert.deepEqual(await seqsOf({ start: 4000, end: 6000, limit: 100 }), seqs.slice(3, 6));
          assert.deepEqual(await seqsOf({ start: 4001, end: 5999, limit: 100 }), [seqs[4]]);
          assert.deepEqual(await seqsOf({ start: 20000, limit: 100 }), []);
        });

        it("limits from the oldest, or from the newest in reverse", async function () {
          assert.deepEqual(await seqsOf({ limit: 3 }), seqs.slice(0, 3));
          assert.deepEqual(await seqsOf({ limit: 3, reverse: true }), [seqs[9], seqs[8], seqs[7]]);
          assert.deepEqual(await seqsOf({ limit: 100, reverse: true }), [...seqs].reverse());
          assert.deepEqual(await seqsOf({ limit: 3, reverse: false }), seqs.slice(0, 3));
          assert.deepEqual(await seqsOf({ limit: 0 }), []);
        });

        it("combines every filter", async function () {
          // bob's entries are seqs[0, 2, 4, 6, 8] at ts 1000, 3000, 5000, 7000, 9000.
          assert.deepEqual(await seqsOf({ with: bob, afterSeq: seqs[0], beforeSeq: seqs[9], start: 2000, end: 8000, limit: 100 }),
            [seqs[2], seqs[4], seqs[6]]);
          assert.deepEqual(await seqsOf({ with: bob, afterSeq: seqs[0], beforeSeq: seqs[9], start: 2000, end: 8000, limit: 2 }),
            [seqs[2], seqs[4]]);
          assert.deepEqual(await seqsOf({ with: bob, afterSeq: seqs[0], beforeSeq: seqs[9], start: 2000, end: 8000, limit: 2, reverse: true }),
            [seqs[6], seqs[4]]);
          // A page before a known message, newest first (MAM paging backwards).
          assert.deepEqual(await seqsOf({ with: carol, beforeSeq: seqs[9], limit: 2, reverse: true }), [seqs[7], seqs[5]]);
          assert.deepEqual(await seqsOf({ with: carol, start: 6000, limit: 10, reverse: true }), [seqs[9], seqs[7], seqs[5]]);
        });

        it("reads only the given owner's timeline", async function () {
          const bobs = await store.timeline.query(bob, { limit: 100 });
          assert.equal(bobs.length, 1);
          assert.equal(bobs[0].peer, alice);
          assert.deepEqual(await store.timeline.query(carol, { limit: 100 }), []);
        });
      });
    });

    describe("timeline: the message archive (MAM)", function () {
      it("defaults to archived entries without search text", async function () {
        const { archived: _a, searchText: _s, ...bare } = entry(alice, bob);
        const [result] = await store.timeline.append([bare]);
        assert.equal(result.archived, true);
        assert.equal(result.searchText, null);
        const [stored] = await store.timeline.query(alice, { limit: 10 });
        assert.equal(stored.archived, true);
        assert.equal(stored.searchText, null);
      });

      it("keeps unarchived entries out of archive queries, but not out of offline delivery", async function () {
        const [kept] = await store.timeline.append([entry(alice, bob, { pending: true, searchText: "kept" })]);
        const [hidden] = await store.timeline.append([entry(alice, bob, { pending: true, archived: false, searchText: "hidden" })]);
        assert.equal(hidden.archived, false);
        assert.equal(hidden.searchText, "hidden");
        assert.deepEqual((await store.timeline.query(alice, { limit: 10 })).map((e) => [e.seq, e.archived]),
          [[kept.seq, true], [hidden.seq, false]]);
        assert.deepEqual((await store.timeline.query(alice, { limit: 10, archivedOnly: true })).map((e) => e.seq), [kept.seq]);
        assert.deepEqual((await store.timeline.pending(alice, 10)).map((e) => e.seq), [kept.seq, hidden.seq]);
        assert.equal(await store.timeline.count(alice, {}), 2);
        assert.equal(await store.timeline.count(alice, { archivedOnly: true }), 1);
      });

      it("finds an entry by its stanza id, in its owner's timeline only", async function () {
        const [sent, received] = await store.timeline.append(message(alice, bob, "by-id"));
        const { duplicate: _, ...stored } = received;
        assert.deepEqual(await store.timeline.byStanzaId(bob, received.stanzaId), stored);
        assert.equal((await store.timeline.byStanzaId(alice, sent.stanzaId))?.seq, sent.seq);
        assert.equal(await store.timeline.byStanzaId(alice, received.stanzaId), null, "bob's id is not in alice's timeline");
        assert.equal(await store.timeline.byStanzaId(alice, "no-such-id"), null);
      });

      describe("XEP-0359 stanza ids derived from the seq", function () {
        it("gives a row written without an id an opaque one, the same on every read, found by id and in id filters", async function () {
          const derived = (owner: string, peer: string) => entry(owner, peer, { stanzaId: undefined });
          const rows = await store.timeline.append([derived(alice, bob), derived(bob, alice), entry(alice, bob), derived(alice, carol)]);
          const [a1, b1, explicit, a2] = rows;
          // One encrypted block (base64url), not the seq: XEP-0359 §5.
          for (const r of [a1, b1, a2]) assert.match(r.stanzaId, /^[A-Za-z0-9_-]{22}$/);
          assert.equal(new Set([a1.stanzaId, b1.stanzaId, a2.stanzaId]).size, 3);
          // Stable: reads give the id the append answered.
          const read = await store.timeline.query(alice, { limit: 10 });
          assert.deepEqual(read.map((e) => e.stanzaId), [a1.stanzaId, explicit.stanzaId, a2.stanzaId]);
          const { duplicate: _, ...stored } = a2;
          assert.deepEqual(await store.timeline.byStanzaId(alice, a2.stanzaId), stored);
          assert.equal((await store.timeline.byStanzaId(bob, b1.stanzaId))?.seq, b1.seq);
          assert.equal(await store.timeline.byStanzaId(bob, a1.stanzaId), null, "alice's id names nothing in bob's timeline");
          assert.equal(await store.timeline.byStanzaId(alice, b1.stanzaId), null, "bob's id names nothing in alice's timeline");
          // A made-up id of the same shape names nothing.
          assert.equal(await store.timeline.byStanzaId(alice, "A".repeat(22)), null);
          const ids = [a2.stanzaId, explicit.stanzaId, b1.stanzaId, "unknown"];
          assert.deepEqual((await store.timeline.query(alice, { stanzaIds: ids, limit: 10 })).map((e) => e.seq), [explicit.seq, a2.seq]);
          assert.equal(await store.timeline.count(alice, { stanzaIds: ids }), 2);
          assert.deepEqual((await store.timeline.query(alice, { stanzaIds: ids, with: carol, limit: 10 })).map((e) => e.seq), [a2.seq]);
        });

        it("answers a resend of a row with a derived id with that row's id", async function () {
          const [first] = await store.timeline.append([entry(alice, bob, { stanzaId: undefined, originId: "derived-resend" })]);
          const [again] = await store.timeline.append([entry(alice, bob, { stanzaId: undefined, originId: "derived-resend" })]);
          assert.equal(again.duplicate, true);
          assert.equal(again.seq, first.seq);
          assert.equal(again.stanzaId, first.stanzaId);
        });
      });

      it("filters by stanza ids, in seq order", async function () {
        const rows = await store.timeline.append([entry(alice, bob), entry(alice, carol), entry(alice, bob), entry(bob, alice)]);
        const ids = [rows[2].stanzaId, rows[0].stanzaId, rows[3].stanzaId, "unknown"];
        assert.deepEqual((await store.timeline.query(alice, { stanzaIds: ids, limit: 10 })).map((e) => e.seq), [rows[0].seq, rows[2].seq]);
        assert.deepEqual((await store.timeline.query(alice, { stanzaIds: ids, with: carol, limit: 10 })).map((e) => e.seq), []);
        assert.deepEqual(await store.timeline.query(alice, { stanzaIds: [], limit: 10 }), []);
        assert.equal(await store.timeline.count(alice, { stanzaIds: ids }), 2);
      });

      describe("full-text search", function () {
        const texts = [
          "Wherefore art thou Romeo?",
          "Deny thy father and refuse thy name",
          "A rose by any other name would smell as sweet",
          "Grüße an ÜBER-Straße, see https://example.org/rose?x=1",
          "romeo@montague.example said: ROSES are red",
        ];
        let seqs: number[];
        beforeEach(async function () {
          seqs = [];
          for (const [i, text] of texts.entries()) {
            const [r] = await store.timeline.append([entry(alice, i % 2 === 0 ? bob : carol, { searchText: text, ts: (i + 1) * 1000 })]);
            seqs.push(r.seq);
          }
          await store.timeline.append([entry(alice, bob, { searchText: null, xml: "<message><body>rose name</body></message>" })]);
          await store.timeline.append([entry(alice, bob, { searchText: "rose name", archived: false })]);
          await store.timeline.append([entry(bob, alice, { searchText: "rose name" })]);
        });
        const search = async (fulltext: string, extra: Partial<Parameters<Store["timeline"]["query"]>[1]> = {}): Promise<number[]> =>
          (await store.timeline.query(alice, { fulltext, archivedOnly: true, limit: 100, ...extra })).map((e) => seqs.indexOf(e.seq));

        it("matches whole words and word beginnings, ignoring case", async function () {
          assert.deepEqual(await search("romeo"), [0, 4]);
          assert.deepEqual(await search("ROSE"), [2, 3, 4], "rose, rose (in a URL), ROSES");
          assert.deepEqual(await search("ros"), [2, 3, 4]);
          assert.deepEqual(await search("oses"), [], "not inside a word");
          assert.deepEqual(await search("wherefore"), [0]);
          assert.deepEqual(await search("nothing-like-this"), []);
        });

        it("needs every word of the query, in any order", async function () {
          assert.deepEqual(await search("name thy"), [1]);
          assert.deepEqual(await search("name rose"), [2]);
          assert.deepEqual(await search("  name,  ROSE! "), [2], "punctuation separates words");
          assert.deepEqual(await search("name rose zebra"), []);
        });

        it("splits addresses, URLs and hyphenated words into words, and folds non-ASCII case", async function () {
          assert.deepEqual(await search("montague"), [4]);
          assert.deepEqual(await search("example"), [3, 4]);
          assert.deepEqual(await search("straße"), [3]);
          assert.deepEqual(await search("über"), [3]);
          assert.deepEqual(await search("GRÜSSE"), [], "no stemming or transliteration");
          assert.deepEqual(await search("grü"), [3]);
        });

        it("combines with the other filters, counts and pages", async function () {
          assert.deepEqual(await search("name", { with: carol }), [1]);
          assert.deepEqual(await search("rose", { start: 4000 }), [3, 4]);
          assert.deepEqual(await search("rose", { afterSeq: seqs[2], limit: 1 }), [3]);
          assert.deepEqual(await search("rose", { reverse: true, limit: 2 }), [4, 3]);
          assert.equal(await store.timeline.count(alice, { fulltext: "rose", archivedOnly: true }), 3);
          assert.equal(await store.timeline.count(alice, { fulltext: "rose" }), 4, "with the unarchived row");
          assert.equal(await store.timeline.count(alice, { fulltext: "rose", with: bob, archivedOnly: true }), 2);
        });

        it("treats a query without words as no filter", async function () {
          assert.equal((await store.timeline.query(alice, { fulltext: " ?! ", limit: 100 })).length, 7);
          assert.equal(await store.timeline.count(alice, { fulltext: "" }), 7);
        });
      });

      it("counts what a query without a limit returns", async function () {
        const seqs: number[] = [];
        for (let i = 0; i < 10; i++) {
          const [r] = await store.timeline.append([entry(alice, i % 2 === 0 ? bob : carol, { ts: (i + 1) * 1000, archived: i !== 9 })]);
          seqs.push(r.seq);
        }
        assert.equal(await store.timeline.count(alice, {}), 10);
        assert.equal(await store.timeline.count(alice, { archivedOnly: true }), 9);
        assert.equal(await store.timeline.count(alice, { with: bob }), 5);
        assert.equal(await store.timeline.count(alice, { afterSeq: seqs[2], beforeSeq: seqs[7] }), 4);
        assert.equal(await store.timeline.count(alice, { start: 2000, end: 4000, with: carol }), 2);
        assert.equal(await store.timeline.count(carol, {}), 0);
      });

      it("expires old entries of every owner, except pending ones, and never reuses their seqs", async function () {
        const old = 1_600_000_000_000;
        const rows = await store.timeline.append([
          entry(alice, bob, { ts: old }),
          entry(alice, bob, { ts: old, pending: true }),
          entry(alice, bob, { ts: old, archived: false }),
          entry(bob, alice, { ts: old + 1 }),
          entry(alice, bob, { ts: old + 10_000 }),
        ]);
        const lastAlice = await store.timeline.lastSeq(alice);
        // Other tests' old rows may go too: the database is shared.
        assert.ok(await store.timeline.expire({ unarchivedBefore: old + 5_000 }) >= 1);
        assert.deepEqual((await store.timeline.query(alice, { limit: 10 })).map((e) => e.seq), [rows[0].seq, rows[1].seq, rows[4].seq]);
        assert.ok(await store.timeline.expire({ before: old + 5_000 }) >= 2);
        assert.deepEqual((await store.timeline.query(alice, { limit: 10 })).map((e) => e.seq), [rows[1].seq, rows[4].seq],
          "the pending entry stays for offline delivery");
        assert.deepEqual(await store.timeline.query(bob, { limit: 10 }), []);
        assert.equal(await store.timeline.byStanzaId(alice, rows[0].stanzaId), null);
        assert.equal(await store.timeline.lastSeq(alice), lastAlice);
        const [next] = await store.timeline.append([entry(alice, bob)]);
        assert.ok(next.seq > lastAlice);
      });

      it("expires by one retention policy: archived and unarchived entries by their own age, never pending ones", async function () {
        const old = 1_500_000_000_000;
        const rows = await store.timeline.append([
          entry(alice, bob, { ts: old }),                                   // archived, older than both limits
          entry(alice, bob, { ts: old, pending: true, archived: false }),   // pending: stays
          entry(alice, bob, { ts: old + 20_000, archived: false }),          // unarchived, past its shorter limit
          entry(alice, bob, { ts: old + 20_000 }),                           // archived, within its limit
          entry(alice, bob, { ts: old + 40_000, archived: false }),          // unarchived, within its limit
        ]);
        const lastAlice = await store.timeline.lastSeq(alice);
        assert.equal(await store.timeline.expire({}), 0, "without a limit nothing expires");
        assert.equal(await store.timeline.query(alice, { limit: 10 }).then((r) => r.length), 5);
        // Other tests' old rows may go too: the database is shared.
        assert.ok(await store.timeline.expire({ before: old + 10_000, unarchivedBefore: old + 30_000 }) >= 2);
        assert.deepEqual((await store.timeline.query(alice, { limit: 10 })).map((e) => e.seq),
          [rows[1].seq, rows[3].seq, rows[4].seq]);
        assert.equal(await store.timeline.countPending(alice), 1);
        const [next] = await store.timeline.append([entry(alice, bob)]);
        assert.ok(next.seq > lastAlice, "expired seqs are not reused");
        await assert.rejects(store.timeline.expire({ before: Number.NaN }), TypeError);
      });
    });

    describe("key-value", function () {
      it("sets, reads, overwrites and deletes values", async function () {
        const kv = store.keyValue("vcard");
        assert.equal(await kv.get(alice, "card"), null);
        await kv.set(alice, "card", "<vCard xmlns='vcard-temp'/>");
        assert.equal(await kv.get(alice, "card"), "<vCard xmlns='vcard-temp'/>");
        await kv.set(alice, "card", "<vCard xmlns='vcard-temp'><FN>Alice ✓</FN></vCard>");
        assert.equal(await kv.get(alice, "card"), "<vCard xmlns='vcard-temp'><FN>Alice ✓</FN></vCard>");
        await kv.set(alice, "empty", "");
        assert.equal(await kv.get(alice, "empty"), "", "the empty string is a value");
        await kv.set(alice, "card", null);
        assert.equal(await kv.get(alice, "card"), null);
        await kv.set(alice, "card", null); // deleting nothing is fine
        assert.equal(await kv.get(alice, "empty"), "");
      });

      it("applies the calls on one key in the order they were issued, without waiting for each other", async function () {
        const kv = store.keyValue("order");
        const calls: Promise<unknown>[] = [];
        for (let i = 1; i <= 50; i++) calls.push(kv.set(alice, "ack", String(i)));
        const seen = kv.get(alice, "ack");
        calls.push(kv.set(alice, "ack", null), kv.set(alice, "ack", "last"));
        const final = kv.get(alice, "ack");
        await Promise.all(calls);
        assert.equal(await seen, "50", "a get sees every set issued before it");
        assert.equal(await final, "last");
        assert.equal(await kv.get(alice, "ack"), "last", "the set issued last stays");
      });

      it("keeps stores, owners and keys apart", async function () {
        const a = store.keyValue("private");
        const b = store.keyValue("last");
        await a.set(alice, "k", "private alice");
        await b.set(alice, "k", "last alice");
        await a.set(bob, "k", "private bob");
        await a.set(alice, "k2", "private alice 2");
        assert.equal(await a.get(alice, "k"), "private alice");
        assert.equal(await b.get(alice, "k"), "last alice");
        assert.equal(await a.get(bob, "k"), "private bob");
        assert.equal(await b.get(bob, "k"), null);
        assert.equal(await a.get(alice, "k2"), "private alice 2");
        await a.set(alice, "k", null);
        assert.equal(await b.get(alice, "k"), "last alice");
        assert.equal(await a.get(bob, "k"), "private bob");
        assert.equal(await store.keyValue("private").get(alice, "k2"), "private alice 2", "same store by name");
      });
    });

    describe("map", function () {
      it("gets, sets, deletes and lists by owner, over the key-value data of the same name", async function () {
        const map = store.map("prefs");
        await map.set(alice, "b", "2");
        await map.set(alice, "a", "1");
        await map.set(alice, "c", "");
        await map.set(bob, "a", "bob's");
        await store.map("other").set(alice, "z", "elsewhere");
        assert.deepEqual([...await map.list(alice)], [["a", "1"], ["b", "2"], ["c", ""]]);
        assert.deepEqual([...await map.list(carol)], []);
        assert.equal(await store.keyValue("prefs").get(alice, "b"), "2", "the same data as keyValue");
        assert.equal(await map.delete(alice, "b"), true);
        assert.equal(await map.delete(alice, "b"), false, "nothing left to delete");
        assert.equal(await map.get(alice, "b"), null);
        assert.deepEqual([...(await map.list(alice)).keys()], ["a", "c"]);
        assert.equal(await map.get(bob, "a"), "bob's");
      });

      it("updates atomically: creates, changes, deletes or leaves a value, and resolves to what is stored", async function () {
        const map = store.map("counters");
        const seen: Array<string | null> = [];
        assert.equal(await map.update(alice, "n", (v) => { seen.push(v); return "1"; }), "1");
        assert.equal(await map.update(alice, "n", (v) => { seen.push(v); return String(Number(v) + 1); }), "2");
        assert.equal(await map.update(alice, "n", (v) => { seen.push(v); return undefined; }), "2", "undefined leaves it");
        assert.equal(await map.update(alice, "n", (v) => { seen.push(v); return null; }), null, "null deletes it");
        assert.equal(await map.get(alice, "n"), null);
        assert.equal(await map.update(alice, "n", () => undefined), null);
        assert.deepEqual(seen, [null, "1", "2", "2"]);
        await map.set(alice, "n", "5");
        await assert.rejects(map.update(alice, "n", () => { throw new Error("no"); }), /no/);
        await assert.rejects(map.update(alice, "n", () => 6 as unknown as string), TypeError);
        assert.equal(await map.get(alice, "n"), "5", "a failed update writes nothing");
      });

      it("compare-and-sets many keys at once, resolving to the stored values in order", async function () {
        const map = store.map("batch");
        await map.set(alice, "a", "1");
        await map.set(alice, "c", "theirs");
        const out = await map.putIfMany([
          { owner: alice, key: "a", value: "2", expect: "1" },
          { owner: alice, key: "b", value: "new", expect: null },
          { owner: alice, key: "c", value: "mine", expect: "what I wrote" },
          { owner: bob, key: "a", value: "x", expect: "not there" },
        ]);
        assert.deepEqual(out, ["2", "new", "theirs", null]);
        assert.deepEqual([...await map.list(alice)], [["a", "2"], ["b", "new"], ["c", "theirs"]]);
        assert.equal(await map.get(bob, "a"), null);
        assert.deepEqual(await map.putIfMany([]), []);
        await assert.rejects(map.putIfMany([{ owner: alice, key: "a", value: 6 as unknown as string, expect: "2" }]), TypeError);
        assert.equal(await map.get(alice, "a"), "2");
      });

      it("loses no update when two store clients race on one key, 50 updates each", async function () {
        const other = await open();
        try {
          const increment = (v: string | null): string => String(Number(v ?? "0") + 1);
          const calls = [store, other].flatMap((s) =>
            Array.from({ length: 50 }, () => s.map("race").update(alice, "counter", increment)));
          const results = await Promise.all(calls);
          assert.equal(await store.map("race").get(alice, "counter"), "100");
          assert.equal(await other.map("race").get(alice, "counter"), "100");
          assert.deepEqual(results.map(Number).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1),
            "each update saw the one before it");
        } finally {
          await other.close();
        }
      });
    });

    describe("block lists", function () {
      it("adds, lists, removes and clears, answering what changed", async function () {
        const blocks = store.blockLists;
        assert.deepEqual(await blocks.list(alice), []);
        assert.deepEqual(await blocks.add(alice, [`spam.${host}`, carol, bob, bob]), [bob, carol, `spam.${host}`].sort());
        assert.deepEqual(await blocks.add(alice, [bob, `${carol}/phone`]), [`${carol}/phone`], "only what is new");
        assert.deepEqual(await blocks.list(alice), [bob, carol, `${carol}/phone`, `spam.${host}`].sort());
        assert.deepEqual(await blocks.remove(alice, [bob, "nobody@x"]), [bob], "only what was there");
        assert.deepEqual(await blocks.add(alice, []), []);
        assert.deepEqual(await blocks.remove(alice, []), []);
        assert.deepEqual(await blocks.list(bob), [], "lists are per owner");
        assert.deepEqual(await blocks.clear(alice), [carol, `${carol}/phone`, `spam.${host}`].sort());
        assert.deepEqual(await blocks.list(alice), []);
        assert.deepEqual(await blocks.clear(alice), []);
        await assert.rejects(blocks.add(alice, [42 as unknown as string]), TypeError);
      });

      it("answers whether any of an address's forms is blocked", async function () {
        const blocks = store.blockLists;
        await blocks.add(alice, [bob, `spam.${host}`, `${carol}/laptop`]);
        assert.equal(await blocks.isBlocked(alice, [`${bob}/phone`, bob, host]), true, "by bare JID");
        assert.equal(await blocks.isBlocked(alice, [`x@spam.${host}/r`, `x@spam.${host}`, `spam.${host}`]), true, "by domain");
        assert.equal(await blocks.isBlocked(alice, [`${carol}/laptop`, carol, host]), true, "by full JID");
        assert.equal(await blocks.isBlocked(alice, [`${carol}/phone`, carol, host]), false);
        assert.equal(await blocks.isBlocked(alice, []), false);
        assert.equal(await blocks.isBlocked(bob, [`${bob}/phone`, bob, host]), false, "another owner's list");
        const many = Array.from({ length: 20 }, (_, i) => `u${i}@${host}`);
        assert.equal(await blocks.isBlocked(alice, many), false);
        assert.equal(await blocks.isBlocked(alice, [...many, bob]), true, "any number of candidates");
      });

      it("loses no change when two store clients block at once", async function () {
        const other = await open();
        try {
          await Promise.all(Array.from({ length: 20 }, (_, i) =>
            (i % 2 === 0 ? store : other).blockLists.add(alice, [`u${i}@${host}`])));
          assert.equal((await other.blockLists.list(alice)).length, 20);
          assert.equal(await store.blockLists.isBlocked(alice, [`u7@${host}`]), true, "seen by the other client");
        } finally {
          await other.close();
        }
      });
    });

    describe("conversations", function () {
      const room = (): string => `room@muc.${host}`;

      it("starts empty, at version 0 and folded up to 0", async function () {
        assert.deepEqual(await store.conversations.head(alice), { version: 0, foldedUpTo: 0 });
        assert.equal(await store.conversations.get(alice, bob), null);
        assert.deepEqual(await store.conversations.list(alice, 0), { version: 0, foldedUpTo: 0, items: [] });
        assert.deepEqual(await store.conversations.recalls(alice), new Map());
      });

      it("updates one row atomically, giving every change the owner's next list version", async function () {
        const convs = store.conversations;
        const first = await convs.update(alice, bob, (c) => ({ ...(c ?? state()), last: 3, lastTs: 1000, unread: 1 }));
        assert.deepEqual(first, { conversation: { ...state({ last: 3, lastTs: 1000, unread: 1 }), peer: bob, version: 1 }, changed: true });
        const pinned = await convs.update(alice, carol, () => state({ last: 5, lastTs: 2000, pinned: true, group: true }));
        assert.equal(pinned.conversation?.version, 2);
        const same = await convs.update(alice, bob, (c) => ({ ...c! }));
        assert.deepEqual(same, { conversation: first.conversation, changed: false }, "an equal state is no change");
        assert.deepEqual(await convs.update(alice, bob, () => undefined), same);
        const read = await convs.update(alice, bob, (c) => ({ ...c!, read: 3, unread: 0, peerRead: 2, peerDelivered: 3, muted: true }));
        assert.equal(read.conversation?.version, 3);
        assert.deepEqual(await convs.get(alice, bob), read.conversation);
        assert.deepEqual(await convs.head(alice), { version: 3, foldedUpTo: 0 });

        const all = await convs.list(alice, 0);
        assert.deepEqual(all.items.map((c) => c.peer), [carol, bob], "newest activity first");
        assert.equal(all.version, 3);
        assert.deepEqual((await convs.list(alice, 2)).items.map((c) => c.peer), [bob], "only rows changed after the version");
        assert.deepEqual((await convs.list(alice, 3)).items, []);

        assert.deepEqual(await convs.update(alice, carol, () => null), { conversation: null, changed: true });
        assert.equal(await convs.get(alice, carol), null);
        assert.equal((await convs.head(alice)).version, 4, "a deletion is a change of the list");
        assert.deepEqual(await convs.update(alice, carol, () => null), { conversation: null, changed: false });
        assert.equal((await convs.list(bob, 0)).items.length, 0, "rows are per owner");
      });

      it("lists two 1:1 conversations whose last messages share a millisecond in the owner's timeline order", async function () {
        const convs = store.conversations;
        // Carol's message came later (seq 8) in the same millisecond as Bob's (seq 7): hers first, though
        // "bob" sorts before "carol".
        await convs.update(alice, carol, () => state({ last: 8, lastTs: 5000, unread: 1 }));
        await convs.update(alice, bob, () => state({ last: 7, lastTs: 5000, unread: 1 }));
        assert.deepEqual((await convs.list(alice, 0)).items.map((c) => c.peer), [carol, bob]);
      });

      it("refuses an invalid state and writes nothing", async function () {
        await store.conversations.update(alice, bob, () => state({ unread: 1 }));
        for (const bad of [state({ unread: -1 }), state({ last: 1.5 }), { ...state(), pinned: "yes" }, { last: 1 }]) {
          await assert.rejects(store.conversations.update(alice, bob, () => bad as ConversationState), TypeError);
        }
        await assert.rejects(store.conversations.update(alice, bob, () => { throw new Error("no"); }), /no/);
        assert.equal((await store.conversations.get(alice, bob))?.unread, 1);
        assert.equal((await store.conversations.head(alice)).version, 1);
      });

      it("folds timeline rows into several rows at one version, only from the position it read", async function () {
        const convs = store.conversations;
        await convs.update(alice, bob, () => state({ last: 1, lastTs: 10, unread: 1 }));
        const changes = new Map([
          [bob, (c: ConversationState | null) => ({ ...(c ?? state()), last: 4, lastTs: 40, unread: (c?.unread ?? 0) + 2 })],
          [room(), (c: ConversationState | null) => ({ ...(c ?? state({ group: true })), last: 9, lastTs: 30, unread: 1 })],
        ]);
        assert.equal(await convs.fold(alice, 0, 4, changes), true);
        assert.deepEqual(await convs.head(alice), { version: 2, foldedUpTo: 4 });
        const { items } = await convs.list(alice, 1);
        assert.deepEqual(items.map((c) => [c.peer, c.unread, c.version, c.group]), [[bob, 3, 2, false], [room(), 1, 2, true]]);
        assert.equal(await convs.fold(alice, 0, 6, changes), false, "another writer folded from 0 already");
        assert.deepEqual(await convs.head(alice), { version: 2, foldedUpTo: 4 });
        assert.equal((await convs.get(alice, bob))?.unread, 3, "a refused fold changes nothing");
        assert.equal(await convs.fold(alice, 4, 7, new Map()), true, "rows that are no conversation move the position only");
        assert.deepEqual(await convs.head(alice), { version: 2, foldedUpTo: 7 });
        await assert.rejects(convs.fold(alice, 7, 6, new Map()), TypeError);
      });

      it("loses no update when two store clients race on one row, 50 updates each", async function () {
        const other = await open();
        try {
          const bump = (c: ConversationState | null): ConversationState => ({ ...(c ?? state()), unread: (c?.unread ?? 0) + 1 });
          const results = await Promise.all([store, other].flatMap((s) =>
            Array.from({ length: 50 }, () => s.conversations.update(alice, bob, bump))));
          assert.equal((await store.conversations.get(alice, bob))?.unread, 100);
          assert.deepEqual(results.map((r) => r.conversation!.unread).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1));
          assert.deepEqual(results.map((r) => r.conversation!.version).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1),
            "every change its own list version");
          assert.deepEqual(await other.conversations.head(alice), { version: 100, foldedUpTo: 0 });
        } finally {
          await other.close();
        }
      });

      it("lets exactly one of two store clients fold from the same position", async function () {
        const other = await open();
        try {
          const changes = new Map([[bob, (c: ConversationState | null) => ({ ...(c ?? state()), unread: (c?.unread ?? 0) + 1 })]]);
          const outcomes = await Promise.all([store, other, store, other].map((s) => s.conversations.fold(alice, 0, 5, changes)));
          assert.equal(outcomes.filter(Boolean).length, 1);
          assert.equal((await store.conversations.get(alice, bob))?.unread, 1, "the timeline rows were counted once");
        } finally {
          await other.close();
        }
      });

      it("records recalls once, per owner", async function () {
        assert.equal(await store.conversations.recall(alice, 12, 30), true);
        assert.equal(await store.conversations.recall(alice, 12, 31), false, "already recalled");
        assert.equal(await store.conversations.recall(alice, 15, 31), true);
        assert.equal(await store.conversations.recall(bob, 12, 40), true);
        assert.deepEqual(await store.conversations.recalls(alice), new Map([[12, 30], [15, 31]]));
      });
    });
  });
}

/**
 * Feature state as the mobile adapter kept it before migration 0003/0004 (JSON documents in key_value, store
 * `<module>:<name>`): [store, owner, key, value]. Damaged documents included; they move nothing.
 */
export const LEGACY_BLOBS: Array<[string, string, string, string]> = [
  ["mobile:blocking", "alice@legacy.example", "blocked", JSON.stringify(["bob@legacy.example", "carol@legacy.example/phone", "spam.example"])],
  ["mobile:blocking", "dave@legacy.example", "blocked", "[\"half"],
  ["mobile:blocking", "eve@legacy.example", "blocked", JSON.stringify({ not: "a list" })],
  ["mobile:conversations", "alice@legacy.example", "conversations", JSON.stringify({
    ver: 7, upTo: 42,
    c: {
      "bob@legacy.example": { last: 40, lastTs: 1_700_000_000_000, read: 38, unread: 2, pinned: true, muted: false, v: 7, peerRead: 39, peerDelivered: 40, group: false },
      "room@muc.legacy.example": { last: 5, lastTs: 1_700_000_000_500, read: 5, unread: 0, pinned: false, muted: true, v: 3, peerRead: 0, peerDelivered: 0, group: true },
    },
    r: { 12: 30, 15: 31 },
  })],
  // Written before conversations had a `group` flag and recalls: defaults.
  ["mobile:conversations", "eve@legacy.example", "conversations", JSON.stringify({
    ver: 1, upTo: 3, c: { "bob@legacy.example": { last: 3, lastTs: 5, read: 0, unread: 1, pinned: false, muted: false, v: 1, peerRead: 0, peerDelivered: 0 } },
  })],
  ["mobile:conversations", "dave@legacy.example", "conversations", "{\"ver\": 3, \"c\""],
  ["mobile:devices", "alice@legacy.example", "phone", "{\"acked\":12}"],
];

/** What a store migrated from LEGACY_BLOBS holds: the documents as rows, and the documents gone. */
export async function assertLegacyBlobsMigrated(store: Store): Promise<void> {
  const [alice, dave, eve] = ["alice", "dave", "eve"].map((u) => `${u}@legacy.example`);
  assert.deepEqual(await store.blockLists.list(alice), ["bob@legacy.example", "carol@legacy.example/phone", "spam.example"]);
  assert.equal(await store.blockLists.isBlocked(alice, ["x@spam.example/r", "x@spam.example", "spam.example"]), true);
  assert.deepEqual(await store.blockLists.list(dave), [], "a damaged list blocked nothing");
  assert.deepEqual(await store.blockLists.list(eve), []);

  assert.deepEqual(await store.conversations.list(alice, 0), {
    version: 7, foldedUpTo: 42,
    items: [
      { peer: "room@muc.legacy.example", last: 5, lastTs: 1_700_000_000_500, read: 5, unread: 0, pinned: false, muted: true, peerRead: 0, peerDelivered: 0, group: true, version: 3 },
      { peer: "bob@legacy.example", last: 40, lastTs: 1_700_000_000_000, read: 38, unread: 2, pinned: true, muted: false, peerRead: 39, peerDelivered: 40, group: false, version: 7 },
    ],
  });
  assert.deepEqual(await store.conversations.recalls(alice), new Map([[12, 30], [15, 31]]));
  assert.deepEqual(await store.conversations.head(eve), { version: 1, foldedUpTo: 3 });
  assert.equal((await store.conversations.get(eve, "bob@legacy.example"))?.group, false);
  assert.deepEqual(await store.conversations.head(dave), { version: 0, foldedUpTo: 0 }, "a damaged document is rebuilt from the timeline");
  assert.equal((await store.conversations.update(alice, "bob@legacy.example", (c) => ({ ...c!, unread: 0 }))).conversation?.version, 8,
    "the list version continues from the document's");

  for (const [name, owner, key] of LEGACY_BLOBS.filter(([name]) => name !== "mobile:devices")) {
    assert.equal(await store.keyValue(name).get(owner, key), null, `${name} ${owner}: the document is gone`);
  }
  assert.equal(await store.keyValue("mobile:devices").get(alice, "phone"), "{\"acked\":12}", "other data stays");
}
