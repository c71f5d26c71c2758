// The generated parts of the README: compliance tables (measured test results joined with module
// metadata) and configuration reference.
import { describeConfig, renderDefaultYaml } from "../../src/config/config.js";
import { complianceTable, measuredLine, suitesTable } from "../../src/modules/compliance.js";
import { readResults } from "./compliance-results.js";
import { streamLayer } from "../../src/c2s/specs.js";
import { serverModules } from "../../src/server.js";
import { extensions } from "../../extensions/index.js";

/** Every module the `hearth` command loads. */
export const shippedModules = serverModules(extensions);

/** hearth.example.yaml: every key at its default, every module's options included. */
export function exampleYaml(): string {
  return renderDefaultYaml(shippedModules);
}

export function generatedSections(): Record<string, string> {
  const config = ["| Key | Default | Environment | Description |", "|---|---|---|---|"];
  for (const k of describeConfig(shippedModules)) {
    config.push(`| \`${k.key}\` | \`${k.default}\` | \`${(k as { env?: string }).env ?? ""}\` | ${k.description.replace(/\|/g, "\\|").replace(/\n/g, " ")} |`);
  }
  const results = readResults();
  const defs = [streamLayer, ...shippedModules];
  return {
    compliance: `${measuredLine(results)}\n\n${complianceTable(defs, results)}`,
    suites: suitesTable(defs, results),
    config: config.join("\n"),
  };
}

/** Replaces `<!-- BEGIN name -->…<!-- END name -->` blocks with the generated text. */
export function renderReadme(readme: string): string {
  let out = readme;
  for (const [name, body] of Object.entries(generatedSections())) {
    const re = new RegExp(`(<!-- BEGIN ${name} -->\\n)[\\s\\S]*?(\\n<!-- END ${name} -->)`);
    if (!re.test(out)) throw new Error(`README has no ${name} block`);
    out = out.replace(re, (_m, a: string, b: string) => `${a}${body}${b}`);
  }
  return out;
}
