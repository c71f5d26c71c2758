#!/usr/bin/env -S node --min-semi-space-size=16 --interrupt-budget=16384
// Entry point: wires the core CLI to the bundled extensions (src/ never imports extensions/).
// The node flags above are the server's (npm start and the benchmarks use the same ones): V8's young
// generation starts at 16 MiB instead of growing from 1 MiB, so a lightly loaded server collects it every
// few seconds instead of several times a second (the pauses were the p99 of chat at 200 msgs/s); and V8
// optimises a function after a quarter of the default interpreted work, so a freshly started server (the
// burst of logins after a restart) gets to compiled code sooner.
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
