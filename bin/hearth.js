#!/usr/bin/env node
// Entry point: wires the core CLI to the bundled extensions (src/ never imports extensions/).
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
if (!existsSync(`${root}dist/src/cli/main.js`)) {
  process.stderr.write("hearth: not built yet; run `npm run build` (npm start does it for you)\n");
  process.exit(1);
}
const { main } = await import("../dist/src/cli/main.js");
const { extensions } = await import("../dist/extensions/index.js");
process.exitCode = await main(process.argv.slice(2), { extensions });
