// The three kinds of events (src/events/hooks.ts): run stops at the first answer, fold threads a value,
// observe runs every observer in its own error boundary.
import assert from "node:assert/strict";
import { EventBus, HookBuses, PHASES } from "../src/events/hooks.js";

interface Runs { ask: { n: number } }
interface Folds { collect: { acc: string[]; ctx: { tag: string } } }
interface Notes { happened: { what: string } }

describe("event buses", () => {
  it("run: handlers in phase order, the first truthy answer wins, sync stays sync", () => {
    const bus = new EventBus<Runs, Folds, Notes, string | false>();
    const seen: string[] = [];
    bus.on("ask", () => { seen.push("handle"); return "handled"; }, PHASES.handle);
    bus.on("ask", () => { seen.push("policy"); return false; }, PHASES.policy);
    bus.on("ask", () => { seen.push("fallback"); return "fallback"; }, PHASES.fallback);
    assert.equal(bus.run("ask", { n: 1 }), "handled");
    assert.deepEqual(seen, ["policy", "handle"]);
  });

  it("run: an async handler that answers nothing lets the next one answer", async () => {
    const bus = new EventBus<Runs, Folds, Notes, string | false>();
    bus.on("ask", async (): Promise<false> => false, 2);
    bus.on("ask", () => "second", 1);
    assert.equal(await bus.run("ask", { n: 1 }), "second");
  });

  it("fold: threads the value through every folder", () => {
    const bus = new EventBus<Runs, Folds, Notes>();
    bus.fold("collect", (acc, ctx) => [...acc, `a:${ctx.tag}`]);
    bus.fold("collect", (acc) => [...acc, "b"]);
    assert.deepEqual(bus.runFold("collect", [], { tag: "t" }), ["a:t", "b"]);
  });

  it("observe: a throwing and a rejecting observer are reported, and every other observer still runs in order", async () => {
    const errors: Array<[string, string]> = [];
    const bus = new EventBus<Runs, Folds, Notes>((event, err) => errors.push([event, (err as Error).message]));
    const seen: string[] = [];
    bus.observe("happened", () => { throw new Error("sync failure"); });
    bus.observe("happened", async () => { await Promise.resolve(); throw new Error("store read failed"); });
    bus.observe("happened", async ({ what }) => { seen.push(`late:${what}`); });
    bus.observe("happened", ({ what }) => { seen.push(`last:${what}`); });
    const r = bus.notify("happened", { what: "x" });
    assert.ok(r instanceof Promise, "a promise when an observer returned one");
    await r; // never rejects
    assert.deepEqual(seen, ["late:x", "last:x"]);
    assert.deepEqual(errors, [["happened", "sync failure"], ["happened", "store read failed"]]);
  });

  it("observe: synchronous observers finish before notify returns", () => {
    const bus = new EventBus<Runs, Folds, Notes>();
    const seen: string[] = [];
    bus.observe("happened", ({ what }) => { seen.push(what); });
    assert.equal(bus.notify("happened", { what: "now" }), undefined);
    assert.deepEqual(seen, ["now"]);
  });

  it("an undo removes exactly its registration", () => {
    const bus = new EventBus<Runs, Folds, Notes, string | false>();
    const undo = bus.on("ask", () => "one");
    bus.on("ask", () => "two", -1);
    undo();
    assert.equal(bus.run("ask", { n: 1 }), "two");
  });

  it("per-domain buses: an event fires only on the bus of its domain; server events on the server bus", () => {
    const buses = new HookBuses(() => {});
    buses.addDomain("a.example");
    buses.addDomain("muc.a.example");
    const seen: string[] = [];
    buses.of("a.example")!.observe("account-created", ({ username }) => { seen.push(`a:${username}`); });
    buses.of("muc.a.example")!.observe("account-created", ({ username }) => { seen.push(`muc:${username}`); });
    buses.server.observe("server-started", () => { seen.push("server"); });
    void buses.notify("a.example", "account-created", { host: "a.example", username: "u" });
    void buses.notify("elsewhere.example", "account-created", { host: "elsewhere.example", username: "v" });
    void buses.notify("a.example", "server-started", {});
    assert.deepEqual(seen, ["a:u", "server"]);
    assert.throws(() => buses.addDomain("a.example"), /served already/);
  });
});
