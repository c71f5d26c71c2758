// Mocha root hook plugin (.mocharc `require`): at the end of the run, records which scenarios passed in
// test/results/compliance.json and regenerates the README's compliance tables from it.
//
// A run of every test file (`npm test`) rewrites the file. A run of some files writes nothing, unless
// HEARTH_TEST_COMPLIANCE_MERGE=1: then those files' results replace theirs in the file, the others stay.
// A test that did not run because a before/beforeEach hook of its block failed counts as failed.
// HEARTH_TEST_COMPLIANCE_RESULTS=path writes the results there instead and leaves the README alone.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Context, Hook, Suite } from "mocha";
import { allTestFiles, mergeResults, readResults, repoRoot, resultsPath, sourceFile, writeResults, type Outcome } from "./compliance-results.js";
import { renderReadme } from "./readme-sections.js";

/** Mocha keeps a block's hooks in these (undocumented, stable since mocha 1) fields. */
interface SuiteHooks { _beforeAll: Hook[]; _beforeEach: Hook[]; _afterEach: Hook[]; _afterAll: Hook[] }

interface Walk { outcomes: Outcome[]; loaded: Set<string>; unrun: number }

/**
 * Every test of the tree: passed or failed as it ran; one that did not run because a hook of its block
 * failed (mocha skips the rest of a block then) counts as failed; any other that did not run (--grep,
 * --bail) is `unrun`.
 */
function walk(suite: Suite, hookFailed: boolean, w: Walk): Walk {
  const s = suite as unknown as SuiteHooks;
  const failedHere = hookFailed || [...s._beforeAll, ...s._beforeEach, ...s._afterEach, ...s._afterAll].some((h) => h.state === "failed");
  for (const t of suite.tests) {
    if (!t.file) continue;
    const file = sourceFile(t.file);
    w.loaded.add(file);
    if (t.state === "passed" || t.state === "failed") w.outcomes.push({ file, title: t.fullTitle(), passed: t.state === "passed" });
    else if (failedHere) w.outcomes.push({ file, title: t.fullTitle(), passed: false });
    else if (t.state !== "pending") w.unrun++;
  }
  for (const child of suite.suites) walk(child, failedHere, w);
  return w;
}

export const mochaHooks = {
  afterAll(this: Context) {
    try {
      const root = this.test?.parent;
      if (!root) return;
      const { outcomes: results, loaded, unrun } = walk(root, false, { outcomes: [], loaded: new Set(), unrun: 0 });
      // The whole suite (.mocharc's files) ran, every test of it.
      const complete = unrun === 0 && allTestFiles().every((f) => loaded.has(f));
      if (!complete && process.env.HEARTH_TEST_COMPLIANCE_MERGE !== "1") {
        process.stdout.write("compliance: not every test file ran; test/results/compliance.json left as it was\n");
        return;
      }
      const date = new Date().toISOString().slice(0, 10);
      const store = process.env.HEARTH_TEST_STORE === "postgres" ? "PostgreSQL" : "SQLite";
      const target = process.env.HEARTH_TEST_COMPLIANCE_RESULTS ?? resultsPath;
      const previous = readResults(target);
      const base = previous.command.replace(/ and re-runs of some files$/, "");
      const command = complete
        ? `\`npm test\` (${store} store)`
        : base.startsWith("`npm test`") ? `${base} and re-runs of some files` : "re-runs of some test files";
      writeResults(mergeResults(complete ? { ...previous, files: {}, specs: {} } : previous, results, date, command), target);
      // A results file elsewhere (the hook's own test) leaves the README alone.
      if (target !== resultsPath) return;
      const readmePath = path.join(repoRoot, "README.md");
      const before = readFileSync(readmePath, "utf8");
      const after = renderReadme(before);
      if (after !== before) writeFileSync(readmePath, after);
      process.stdout.write(`compliance: ${results.length} scenarios recorded in test/results/compliance.json${after !== before ? "; README regenerated" : ""}\n`);
    } catch (err) {
      process.stderr.write(`compliance: could not record results: ${(err as Error).stack}\n`);
    }
  },
};
