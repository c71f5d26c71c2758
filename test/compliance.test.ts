// The measured compliance table: the root hook's accounting of a real mocha run, merging, and the status
// a row gets from what was measured. (The README's tables equal what `npm run docs` renders from the
// committed results: test/project.test.ts.)
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { complianceTable, suitesTable, suites2023, type ComplianceResults } from "../src/modules/compliance.js";
import type { ModuleDefinition } from "../src/modules/module.js";
import { mergeResults, repoRoot } from "./tools/compliance-results.js";
import { specsOf } from "./tools/spec-map.js";

function runMocha(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, "node_modules", "mocha", "bin", "mocha.js"), ...args], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out }));
  });
}

const row = (table: string, spec: string) => table.split("\n").find((l) => l.startsWith(`| ${spec} |`))?.split(" | ");

describe("measured compliance table", function () {
  this.timeout(60_000);

  it("records a real mocha run: passed, failed, and blocked by a failing before hook, per spec named in the titles", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "hearth-compliance-"));
    try {
      const file = path.join(dir, "results.json");
      const fixture = path.join(repoRoot, "dist", "test", "fixtures", "compliance", "sample.fixture.js");
      const args = ["--no-config", "--require", path.join(repoRoot, "dist", "test", "tools", "compliance-hooks.js"), "--exit", fixture];
      // A run of some files records nothing unless asked to merge.
      const partial = await runMocha(args, { HEARTH_TEST_COMPLIANCE_MERGE: "", HEARTH_TEST_COMPLIANCE_RESULTS: file });
      assert.match(partial.out, /not every test file ran/);
      assert.equal(existsSync(file), false);
      const { code, out } = await runMocha(args, { HEARTH_TEST_COMPLIANCE_MERGE: "1", HEARTH_TEST_COMPLIANCE_RESULTS: file });
      assert.equal(code, 2, out); // mocha exits with the number of failures
      const r = JSON.parse(readFileSync(file, "utf8")) as ComplianceResults;
      const src = "test/fixtures/compliance/sample.fixture.ts";
      assert.deepEqual(r.files[src].passed, 2);
      assert.deepEqual(r.files[src].failed, 2);
      assert.deepEqual(r.specs["XEP-9998"], {
        passed: [`${src}: XEP-9998 sample passes`],
        failed: [`${src}: XEP-9998 sample a block whose before hook fails never runs`, `${src}: XEP-9998 sample fails (RFC 9999)`],
      });
      assert.deepEqual(r.specs["RFC 9999"], { passed: [], failed: [`${src}: XEP-9998 sample fails (RFC 9999)`] });
      assert.match(r.date, /^\d{4}-\d{2}-\d{2}$/);
      assert.equal(Object.keys(r.specs).length, 2, "a scenario naming no spec counts for none");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a re-run of some files replaces only their scenarios; the output is sorted and deterministic", () => {
    const previous = mergeResults({ date: "", command: "", files: {}, specs: {} }, [
      { file: "test/a.test.ts", title: "XEP-0001 a one", passed: true },
      { file: "test/b.test.ts", title: "XEP-0001 b one", passed: false },
      { file: "test/b.test.ts", title: "XEP-0002 b two", passed: true },
    ], "2026-01-01", "npm test");
    const next = mergeResults(previous, [{ file: "test/b.test.ts", title: "XEP-0001 b one", passed: true }], "2026-02-02", "re-run");
    assert.deepEqual(next.specs, { "XEP-0001": { passed: ["test/a.test.ts: XEP-0001 a one", "test/b.test.ts: XEP-0001 b one"], failed: [] } });
    assert.deepEqual(next.files, { "test/a.test.ts": { date: "2026-01-01", passed: 1, failed: 0 }, "test/b.test.ts": { date: "2026-02-02", passed: 1, failed: 0 } });
    assert.equal(JSON.stringify(mergeResults(previous, [], "2026-01-01", "npm test")), JSON.stringify(previous));
  });

  it("adds the specs a rule gives a file to those its titles name", () => {
    assert.deepEqual(specsOf("test/c2s.test.ts", "c2s streams TLS and SASL logs in with SCRAM-SHA-1 over direct TLS (XEP-0368)"), ["RFC 6120", "RFC 7590", "XEP-0368"]);
    assert.deepEqual(specsOf("test/other.test.ts", "XEP-0313 message archive preferences (XEP-0441)"), ["XEP-0313", "XEP-0441"]);
    assert.deepEqual(specsOf("test/other.test.ts", "nothing here"), []);
  });

  it("derives a row's status from the measurement, never from the metadata alone", () => {
    const defs: ModuleDefinition<any>[] = [{
      name: "m",
      xep: [
        { spec: "XEP-0001", title: "Passing", status: "complete" },
        { spec: "XEP-0002", title: "Never tested", status: "complete" },
        { spec: "XEP-0003", title: "Failing", status: "complete" },
        { spec: "XEP-0004", title: "Partial", status: "partial" },
      ],
      setup() {},
    }];
    const results: ComplianceResults = {
      date: "2026-01-01", command: "npm test", files: {},
      specs: {
        "XEP-0001": { passed: ["t: a"], failed: [] },
        "XEP-0003": { passed: ["t: b"], failed: ["t: c"] },
        "XEP-0004": { passed: ["t: d"], failed: [] },
      },
    };
    const table = complianceTable(defs, results);
    assert.equal(row(table, "XEP-0001")?.[3], "complete");
    assert.equal(row(table, "XEP-0001")?.[4], "1/1");
    assert.equal(row(table, "XEP-0002")?.[3], "untested");
    assert.equal(row(table, "XEP-0002")?.[4], "none");
    assert.equal(row(table, "XEP-0003")?.[3], "failing");
    assert.equal(row(table, "XEP-0003")?.[4], "1/2");
    assert.equal(row(table, "XEP-0004")?.[3], "partial");
    // Every spec a suite requires has a row; one no module declares says so.
    assert.equal(row(table, "XEP-0114")?.[3], "not implemented");
  });

  it("XEP-0479: a suite is met only when each required spec is declared and measured passing, and Core is met", () => {
    const required = [...new Set(suites2023.flatMap((s) => s.features.flatMap((f) => f.specs)))];
    const defs: ModuleDefinition<any>[] = [{ name: "m", xep: required.filter((s) => s !== "XEP-0114").map((spec) => ({ spec, title: spec, status: "complete" as const })), setup() {} }];
    const all: ComplianceResults = { date: "d", command: "c", files: {}, specs: Object.fromEntries(required.filter((s) => s !== "XEP-0114").map((s) => [s, { passed: ["t: x"], failed: [] }])) };
    let text = suitesTable(defs, all);
    assert.match(text, /\*\*Core, Advanced Server: not met\*\* \(missing XEP-0114 \(not implemented\)\)/);
    assert.match(text, /\*\*IM, Advanced Server: not met\*\* \(every required specification measured passing; the Core suite is not met\)/);

    defs[0].xep!.push({ spec: "XEP-0114", title: "Components", status: "complete" });
    all.specs["XEP-0114"] = { passed: ["t: x"], failed: [] };
    text = suitesTable(defs, all);
    for (const s of ["Core", "Web", "IM", "Mobile"]) assert.match(text, new RegExp(`\\*\\*${s}, Advanced Server: met\\*\\*`));

    const untested = { ...all, specs: { ...all.specs } };
    delete untested.specs["XEP-0357"];
    text = suitesTable(defs, untested);
    assert.match(text, /\*\*Mobile, Advanced Server: not met\*\* \(missing XEP-0357 \(untested\)\)/);
    assert.match(text, /\| Mobile \| Third-party push notifications \| XEP-0357 \(untested, none\) \| no \|/);
  });
});
