// The README's compliance table is generated from the `xep` metadata every module declares.
import type { ModuleDefinition } from "./module.js";

export function complianceTable(defs: ModuleDefinition<any>[]): string {
  const rows = new Map<string, { spec: string; title: string; version: string; status: string; modules: string[]; notes: string[] }>();
  for (const d of defs) {
    for (const x of d.xep ?? []) {
      const r = rows.get(x.spec) ?? { spec: x.spec, title: x.title, version: x.version ?? "", status: x.status, modules: [], notes: [] };
      r.modules.push(d.name);
      if (x.note) r.notes.push(x.note);
      if (x.status === "partial") r.status = "partial";
      rows.set(x.spec, r);
    }
  }
  const order = (s: string) => (s.startsWith("RFC") ? `0${s.padEnd(9)}` : `1${s}`);
  const lines = ["| Specification | Title | Version | Status | Module | Notes |", "|---|---|---|---|---|---|"];
  for (const r of [...rows.values()].sort((a, b) => order(a.spec).localeCompare(order(b.spec)))) {
    lines.push(`| ${r.spec} | ${r.title} | ${r.version} | ${r.status} | ${r.modules.join(", ")} | ${r.notes.join("; ").replace(/\|/g, "\\|")} |`);
  }
  return lines.join("\n");
}
