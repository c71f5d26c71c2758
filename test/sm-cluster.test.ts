// XEP-0198 resumption on another node of a cluster (PostgreSQL + Redis): the record in the shared store
// moves the session, and the node that held it lets go without delivering anything twice.
import assert from "node:assert/strict";
import { loadConfig } from "../src/config/config.js";
import { openStore } from "../src/storage/open.js";
import type { Store } from "../src/storage/types.js";
import { xml, type Element } from "../src/xml/element.js";
import { SM_STORE, parseRecord } from "../src/c2s/sm.js";
import type { RawClient } from "./helpers/raw-client.js";
import { sharedPostgres } from "./helpers/postgres.js";
import { startRedis, type PrivateRedis } from "./helpers/redis.js";
import { ServerProcess, bodiesUntilQuiet, plainLogin, resumeOn, smLogin } from "./helpers/server-process.js";

const SM = "urn:xmpp:sm:3";
const isChat = (el: Element) => el.name === "message" && el.getChild("body") !== undefined;
const chat = (to: string, text: string) => xml("message", { to, type: "chat", id: text }, xml("body", null, text));

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("XEP-0198 resumption on the other node of a cluster (PostgreSQL + Redis)", function () {
  this.timeout(90_000);
  let redis: PrivateRedis;
  let store: Store;
  const nodes: ServerProcess[] = [];
  const clients: RawClient[] = [];

  before(async () => {
    const pg = await sharedPostgres();
    const storage = { driver: "postgres", postgres: { url: await pg.createDatabase("hearth_sm_cluster"), poolSize: 4 } };
    redis = await startRedis();
    store = await openStore(loadConfig({ file: null, env: {}, overrides: { storage } as never }));
    for (const name of ["n1", "n2"]) {
      nodes.push(await ServerProcess.create(`sm-${name}`, [
        `storage: ${JSON.stringify(storage)}`,
        `cluster: { redisUrl: "${redis.url}", nodeId: ${name}, heartbeatSeconds: 1, deadAfterSeconds: 3 }`,
      ]));
    }
    await nodes[0].addUser("romeo@localhost", "password");
    await nodes[0].addUser("juliet@localhost", "password");
    await Promise.all(nodes.map((n) => n.start()));
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all(nodes.map((n) => n.dispose()));
    await store?.close();
    await redis?.stop();
  });
  afterEach(function () {
    if (this.currentTest?.state === "failed") for (const n of nodes) process.stderr.write(`--- ${n.name} ---\n${n.output()}\n`);
  });

  it("resumes on node 2 a session that lost its connection on node 1: the unacknowledged messages once, in order", async () => {
    const [n1, n2] = nodes;
    const { c: juliet, id } = await smLogin(n1, "juliet", "phone");
    const romeo = await plainLogin(n2, "romeo", "pc");
    clients.push(juliet, romeo);
    for (const text of ["m1", "m2", "m3"]) romeo.send(chat("juliet@localhost", text));
    for (let i = 0; i < 3; i++) await juliet.receive(isChat, 5000);
    // Her presence and m1 acknowledged; then her network changes and the connection to node 1 is gone.
    juliet.send(xml("a", { xmlns: SM, h: "2" }));
    juliet.destroy();
    // While she is away, a message reaches her hibernated session on node 1, which notes it in the record.
    romeo.send(chat("juliet@localhost/phone", "m4"));
    const record = async () => parseRecord(await store.map(SM_STORE).get("localhost", id));
    await until(async () => {
      const r = await record();
      return r !== null && r.detachedAt !== null && r.rows.length === 2 * 3 && r.acked === 2;
    }, 10_000, "node 1 to note the hibernation, the ack and m4");

    const { c: juliet2, answer } = await resumeOn(n2, "juliet", id, 2);
    clients.push(juliet2);
    assert.equal(answer.name, "resumed", answer.toString());
    assert.equal(answer.attrs.h, "1");
    const resent = await bodiesUntilQuiet(juliet2);
    assert.deepEqual(resent.map((m) => m.getChildText("body")), ["m2", "m3", "m4"]);
    // Node 1 let its copy go without making the resent messages offline again.
    await until(async () => (await record())?.epoch !== undefined && !(await record())?.ended, 5000, "the record to stay live");
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await store.timeline.countPending("juliet@localhost"), 0, "nothing left for offline delivery: no duplicate at the next login");
    // The full JID now routes to node 2, from either node.
    romeo.send(chat("juliet@localhost/phone", "m5"));
    assert.equal((await juliet2.receive(isChat, 5000)).getChildText("body"), "m5");
    const local = await plainLogin(n2, "romeo", "second");
    clients.push(local);
    local.send(chat("juliet@localhost/phone", "m6"));
    assert.equal((await juliet2.receive(isChat, 5000)).getChildText("body"), "m6");
    await juliet2.nothing(isChat, 500);
  });
});
