// Project rules that a reviewer would otherwise have to remember.
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { renderReadme } from "./tools/readme-sections.js";
import { hearthNodeFlags } from "./bench/server-process.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

describe("project structure", () => {
  it("src/ never imports from extensions/ (DESIGN.md layers)", () => {
    const offenders = sources(path.join(root, "src")).filter((f) => /from\s+["'](\.\.\/)+extensions\//.test(readFileSync(f, "utf8")) || /import\(["'](\.\.\/)+extensions\//.test(readFileSync(f, "utf8")));
    assert.deepEqual(offenders.map((f) => path.relative(root, f)), []);
  });

  it("a namespace more than one module speaks is written once, in src/xml/ns.ts", async () => {
    const { NS } = await import("../src/xml/ns.js");
    const files = [...sources(path.join(root, "src")), ...sources(path.join(root, "extensions"))]
      .map((f) => path.relative(root, f).split(path.sep).join("/"))
      .filter((f) => f !== "src/xml/ns.ts");
    const copies = files.flatMap((f) => {
      const text = readFileSync(path.join(root, f), "utf8");
      // A quoted namespace, but not a specification title (XEP-0054 is titled "vcard-temp").
      return Object.values(NS).filter((ns) => text.split(`"${ns}"`).slice(0, -1).some((before) => !before.endsWith("title: "))).map((ns) => `${f}: ${ns}`);
    });
    assert.deepEqual(copies, []);
  });

  it("the README's compliance table and configuration reference match the code (npm run docs)", () => {
    const readme = readFileSync(path.join(root, "README.md"), "utf8");
    assert.equal(renderReadme(readme), readme, "run `npm run docs` to regenerate the README blocks");
  });

  it("npm start runs the server with the node flags of bin/hearth.js, as the benchmarks do", () => {
    const flags = hearthNodeFlags(root);
    assert.ok(flags.includes("--min-semi-space-size=16"), flags.join(" "));
    const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> };
    assert.equal(pkg.scripts.start, `node ${flags.join(" ")} bin/hearth.js start`);
    assert.match(readFileSync(path.join(root, "test/bench/ours.env"), "utf8"), /flags=\$\(sed -n "1s\|\^#!\/usr\/bin\/env -S node\|\|p" bin\/hearth\.js\)/);
    const unit = readFileSync(path.join(root, ".ci/packaging/hearth.service"), "utf8");
    assert.ok(unit.includes(`ExecStart=/usr/bin/node ${flags.join(" ")} /opt/hearth/bin/hearth.js start`));
    const image = readFileSync(path.join(root, ".ci/packaging/Dockerfile"), "utf8");
    assert.ok(image.includes(`CMD ${JSON.stringify(["node", ...flags, "bin/hearth.js", "start"]).replace(/","/g, "\", \"")}`));
  });

  it("the README keeps the two set-up commands", () => {
    const readme = readFileSync(path.join(root, "README.md"), "utf8");
    assert.ok(readme.includes("npm install && npm start"));
    assert.ok(readme.includes("npm test"));
  });
});
