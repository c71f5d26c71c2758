// The README's compliance tables: what the test suite measured (test/results/compliance.json, written by
// `npm test`) joined with the `xep` metadata modules declare (title, version, notes, complete/partial).
// A row's status comes from the measurement: a spec no passing scenario exercised is "untested", one with
// a failing scenario "failing", one no module declares "not implemented".
import type { ModuleDefinition, SpecInfo } from "./module.js";

/** What one test run measured (the committed results file). */
export interface ComplianceResults {
  /** The date (UTC, YYYY-MM-DD) of the latest run that wrote the file. */
  date: string;
  /** How the results were produced ("npm test (SQLite store)"). */
  command: string;
  /** Per test file: when it was last measured and its counts. */
  files: Record<string, { date: string; passed: number; failed: number }>;
  /** Per spec: the scenarios (`file: full title`) that exercised it. */
  specs: Record<string, { passed: string[]; failed: string[] }>;
}

export const emptyResults: ComplianceResults = { date: "", command: "", files: {}, specs: {} };

/** Titles of specifications the compliance suites require that no module implements. */
const knownTitles: Record<string, string> = {
  "RFC 7590": "Use of TLS in XMPP",
  "XEP-0114": "Jabber Component Protocol",
};

interface Row { spec: string; title: string; version: string; status?: SpecInfo["status"]; modules: string[]; notes: string[] }

function declared(defs: ModuleDefinition<any>[]): Map<string, Row> {
  const rows = new Map<string, Row>();
  for (const d of defs) {
    for (const x of d.xep ?? []) {
      const r = rows.get(x.spec) ?? { spec: x.spec, title: x.title, version: x.version ?? "", status: x.status, modules: [], notes: [] };
      r.modules.push(d.name);
      if (x.note) r.notes.push(x.note);
      if (x.status === "partial") r.status = "partial";
      rows.set(x.spec, r);
    }
  }
  return rows;
}

export interface Measured { passed: number; failed: number }

function measured(results: ComplianceResults, spec: string): Measured {
  const m = results.specs[spec];
  return { passed: m?.passed.length ?? 0, failed: m?.failed.length ?? 0 };
}

/** A spec's status as measured: complete/partial only with passing scenarios and no failing one. */
export function measuredStatus(row: Row | undefined, m: Measured): string {
  if (!row?.status) return m.passed > 0 ? "tested, not declared by a module" : "not implemented";
  if (m.failed > 0) return "failing";
  if (m.passed === 0) return "untested";
  return row.status;
}

const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
const order = (s: string) => (s.startsWith("RFC") ? `0${s.padEnd(9)}` : `1${s}`);
const tested = (m: Measured) => (m.passed + m.failed === 0 ? "none" : `${m.passed}/${m.passed + m.failed}`);

/** One row per declared spec and per spec a compliance suite requires. */
export function complianceTable(defs: ModuleDefinition<any>[], results: ComplianceResults): string {
  const rows = declared(defs);
  for (const s of suites2023.flatMap((x) => x.features.flatMap((f) => f.specs))) {
    if (!rows.has(s)) rows.set(s, { spec: s, title: knownTitles[s] ?? "", version: "", modules: [], notes: [] });
  }
  const lines = [
    "| Specification | Title | Version | Status (measured) | Tested (scenarios passed) | Module | Notes |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const r of [...rows.values()].sort((a, b) => order(a.spec).localeCompare(order(b.spec)))) {
    const m = measured(results, r.spec);
    lines.push(`| ${r.spec} | ${cell(r.title)} | ${r.version} | ${measuredStatus(r, m)} | ${tested(m)} | ${r.modules.join(", ")} | ${cell(r.notes.join("; "))} |`);
  }
  return lines.join("\n");
}

/** XEP-0479 (XMPP Compliance Suites 2023), the Advanced Server column of each category we serve. */
export interface Suite { name: string; features: Array<{ feature: string; specs: string[] }>; note?: string }

export const suites2023: Suite[] = [
  {
    name: "Core",
    features: [
      { feature: "Core features", specs: ["RFC 6120"] },
      { feature: "TLS", specs: ["RFC 7590"] },
      { feature: "Direct TLS", specs: ["XEP-0368"] },
      { feature: "Feature discovery", specs: ["XEP-0030"] },
      { feature: "Feature broadcasts", specs: ["XEP-0115"] },
      { feature: "Server extensibility", specs: ["XEP-0114"] },
      { feature: "Event publishing", specs: ["XEP-0163"] },
    ],
  },
  {
    name: "Web",
    features: [{ feature: "Web connection mechanisms", specs: ["RFC 7395", "XEP-0206"] }],
    note: "connection mechanism discovery (XEP-0156) is not required of an Advanced Server",
  },
  {
    name: "IM",
    features: [
      { feature: "Core features", specs: ["RFC 6121"] },
      { feature: "User avatar compatibility", specs: ["XEP-0398", "XEP-0153"] },
      { feature: "vCard storage", specs: ["XEP-0054"] },
      { feature: "Outbound message synchronization", specs: ["XEP-0280"] },
      { feature: "User blocking", specs: ["XEP-0191"] },
      { feature: "Group chat", specs: ["XEP-0045", "XEP-0249"] },
      { feature: "Advanced group chat", specs: ["XEP-0048", "XEP-0313", "XEP-0402", "XEP-0410"] },
      { feature: "Private data via PubSub", specs: ["XEP-0223"] },
      { feature: "Private XML storage", specs: ["XEP-0049"] },
      { feature: "Stream management", specs: ["XEP-0198"] },
      { feature: "History storage and retrieval", specs: ["XEP-0313"] },
      { feature: "File upload", specs: ["XEP-0363"] },
    ],
  },
  {
    name: "Mobile",
    features: [
      { feature: "Stream management", specs: ["XEP-0198"] },
      { feature: "Client state indication", specs: ["XEP-0352"] },
      { feature: "Third-party push notifications", specs: ["XEP-0357"] },
    ],
  },
];

/** A spec meets a suite requirement when a module declares it and it was measured passing, nothing failing. */
function specMet(rows: Map<string, Row>, results: ComplianceResults, spec: string): boolean {
  const m = measured(results, spec);
  return rows.get(spec)?.status !== undefined && m.passed > 0 && m.failed === 0;
}

/** The XEP-0479 table (one row per required feature) and a verdict per suite below it. */
export function suitesTable(defs: ModuleDefinition<any>[], results: ComplianceResults): string {
  const rows = declared(defs);
  const lines = ["| Suite | Feature | Specifications (status, scenarios passed) | Met |", "|---|---|---|---|"];
  const missing = new Map<string, string[]>();
  const partial = new Map<string, string[]>();
  for (const suite of suites2023) {
    const miss: string[] = [];
    const part: string[] = [];
    for (const f of suite.features) {
      const specs = f.specs.map((s) => {
        const m = measured(results, s);
        if (!specMet(rows, results, s)) miss.includes(s) || miss.push(s);
        else if (rows.get(s)?.status === "partial") part.includes(s) || part.push(s);
        return `${s} (${measuredStatus(rows.get(s), m)}, ${tested(m)})`;
      });
      lines.push(`| ${suite.name} | ${f.feature} | ${specs.join(", ")} | ${f.specs.every((s) => specMet(rows, results, s)) ? "yes" : "no"} |`);
    }
    missing.set(suite.name, miss);
    partial.set(suite.name, part);
  }
  lines.push("");
  const core = missing.get("Core") ?? [];
  for (const suite of suites2023) {
    const miss = missing.get(suite.name) ?? [];
    const part = partial.get(suite.name) ?? [];
    const own = miss.length === 0 ? "every required specification measured passing" : `missing ${miss.map((s) => `${s} (${measuredStatus(rows.get(s), measured(results, s))})`).join(", ")}`;
    const needsCore = suite.name !== "Core" && core.length > 0;
    const met = miss.length === 0 && !needsCore;
    const extra = [part.length ? `partial: ${part.join(", ")}` : "", needsCore ? "the Core suite is not met" : "", suite.note ?? ""].filter(Boolean);
    lines.push(`- **${suite.name}, Advanced Server: ${met ? "met" : "not met"}** (${own}${extra.length ? `; ${extra.join("; ")}` : ""}).`);
  }
  return lines.join("\n");
}

/** The line above the tables: when and how the results were measured. */
export function measuredLine(results: ComplianceResults): string {
  if (!results.date) return "No test results recorded yet: run `npm test`.";
  const files = Object.values(results.files);
  const passed = files.reduce((n, f) => n + f.passed, 0);
  const failed = files.reduce((n, f) => n + f.failed, 0);
  return `Measured by ${results.command} on ${results.date}: ${passed} of ${passed + failed} scenarios passed in ${files.length} test files.`;
}
