// `npm run docs`: regenerates the README's generated blocks in place.
import { readFileSync, writeFileSync } from "node:fs";
import { renderReadme } from "./readme-sections.js";

const path = new URL("../../../README.md", import.meta.url);
const before = readFileSync(path, "utf8");
const after = renderReadme(before);
if (after !== before) writeFileSync(path, after);
process.stdout.write(after === before ? "README.md is up to date\n" : "README.md regenerated\n");
