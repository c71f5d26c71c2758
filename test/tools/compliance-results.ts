// test/results/compliance.json: which scenarios of which specs passed in the last `npm test`.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { emptyResults, type ComplianceResults } from "../../src/modules/compliance.js";
import { specsOf } from "./spec-map.js";

/** The repository root (this file runs from dist/test/tools/). */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
export const resultsPath = path.join(repoRoot, "test", "results", "compliance.json");

export function readResults(file = resultsPath): ComplianceResults {
  if (!existsSync(file)) return emptyResults;
  return JSON.parse(readFileSync(file, "utf8")) as ComplianceResults;
}

/** One test's outcome: file as in the source tree ("test/c2s.test.ts"), mocha's full title. */
export interface Outcome { file: string; title: string; passed: boolean }

/** dist/test/x.test.js → test/x.test.ts */
export function sourceFile(distFile: string): string {
  const rel = path.relative(path.join(repoRoot, "dist"), distFile).split(path.sep).join("/");
  return rel.replace(/\.js$/, ".ts");
}

/** Every test file the default mocha run (.mocharc) loads, as source paths. */
export function allTestFiles(): string[] {
  const walk = (dir: string): string[] =>
    existsSync(dir)
      ? readdirSync(dir).flatMap((n) => {
          const p = path.join(dir, n);
          return statSync(p).isDirectory() ? walk(p) : p.endsWith(".test.js") ? [p] : [];
        })
      : [];
  return [...walk(path.join(repoRoot, "dist", "test")), ...walk(path.join(repoRoot, "dist", "conformance"))].map(sourceFile).sort();
}

const sorted = <T>(o: Record<string, T>): Record<string, T> => Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/**
 * The results of a run, merged into `previous`: every file that ran replaces what `previous` held for it
 * (a full run replaces everything). Deterministic: keys and scenario lists are sorted.
 */
export function mergeResults(previous: ComplianceResults, outcomes: Outcome[], date: string, command: string): ComplianceResults {
  const ran = new Set(outcomes.map((o) => o.file));
  const files: ComplianceResults["files"] = {};
  for (const [f, v] of Object.entries(previous.files)) if (!ran.has(f)) files[f] = v;
  const specs: ComplianceResults["specs"] = {};
  for (const [spec, v] of Object.entries(previous.specs)) {
    const keep = (ids: string[]) => ids.filter((id) => !ran.has(id.slice(0, id.indexOf(": "))));
    specs[spec] = { passed: keep(v.passed), failed: keep(v.failed) };
  }
  for (const o of outcomes) {
    const f = (files[o.file] ??= { date, passed: 0, failed: 0 });
    if (o.passed) f.passed++;
    else f.failed++;
    for (const spec of specsOf(o.file, o.title)) {
      const s = (specs[spec] ??= { passed: [], failed: [] });
      (o.passed ? s.passed : s.failed).push(`${o.file}: ${o.title}`);
    }
  }
  for (const [spec, v] of Object.entries(specs)) {
    if (v.passed.length + v.failed.length === 0) delete specs[spec];
    else {
      v.passed = [...new Set(v.passed)].sort();
      v.failed = [...new Set(v.failed)].sort();
    }
  }
  return { date, command, files: sorted(files), specs: sorted(specs) };
}

export function writeResults(results: ComplianceResults, file = resultsPath): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
}
