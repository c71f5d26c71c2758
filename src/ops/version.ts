// The version of this package, read once from package.json (two levels above src/ and dist/src/).
import { readFileSync } from "node:fs";

function readVersion(): string {
  for (const rel of ["../../package.json", "../../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "hearth-im" && typeof pkg.version === "string") return pkg.version;
    } catch { /* try the next level */ }
  }
  return "unknown";
}

export const HEARTH_VERSION = readVersion();
