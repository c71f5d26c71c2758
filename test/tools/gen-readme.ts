// `npm run docs`: regenerates the README's generated blocks and hearth.example.yaml in place.
import { readFileSync, writeFileSync } from "node:fs";
import { exampleYaml, renderReadme } from "./readme-sections.js";

for (const [name, render] of [["README.md", renderReadme], ["hearth.example.yaml", () => exampleYaml()]] as const) {
  const path = new URL(`../../../${name}`, import.meta.url);
  const before = readFileSync(path, "utf8");
  const after = render(before);
  if (after !== before) writeFileSync(path, after);
  process.stdout.write(after === before ? `${name} is up to date\n` : `${name} regenerated\n`);
}
