// The generated parts of the README: compliance table (module metadata) and configuration reference.
import { describeConfig } from "../../src/config/config.js";
import { complianceTable } from "../../src/modules/compliance.js";
import { coreModules } from "../../src/im/index.js";
import { streamLayer } from "../../src/c2s/specs.js";
import { mobileModule } from "../../src/mobile/index.js";
import { extensions } from "../../extensions/index.js";

export function generatedSections(): Record<string, string> {
  const config = ["| Key | Default | Environment | Description |", "|---|---|---|---|"];
  for (const k of describeConfig()) {
    config.push(`| \`${k.key}\` | \`${k.default}\` | \`${(k as { env?: string }).env ?? ""}\` | ${k.description.replace(/\|/g, "\\|").replace(/\n/g, " ")} |`);
  }
  return { compliance: complianceTable([streamLayer, ...coreModules, mobileModule, ...extensions]), config: config.join("\n") };
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
