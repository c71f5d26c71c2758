// XEP-0092: Software Version of the server.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import os from "node:os";
import { moduleOptions } from "../../src/config/schema.js";
import { defineModule } from "../../src/modules/module.js";
import { xml } from "../../src/xml/element.js";

export const NS_VERSION = "jabber:iq:version";
export const SOFTWARE_NAME = "hearth";

export const versionOptions = moduleOptions("Software version (XEP-0092).", {
  showOs: {
    kind: "boolean",
    default: false,
    description: "Include the operating system in the answer; off by default because it helps attackers (XEP-0092 §5).",
  },
});

let cachedVersion: string | undefined;

/** The version of the nearest package.json above this file (source or dist/ layout), read once. */
export function serverVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, "package.json");
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { version?: unknown };
      if (typeof pkg.version === "string") return (cachedVersion = pkg.version);
    }
    dir = dirname(dir);
  }
  return (cachedVersion = "unknown");
}

export const version = defineModule({
  name: "version",
  xep: [{ spec: "XEP-0092", title: "Software Version", version: "1.1", status: "complete" }],
  options: versionOptions,
  setup(api) {
    const versionText = serverVersion();
    const osText = api.options.showOs ? `${os.type()} ${os.release()}` : null;
    api.addFeature(NS_VERSION);
    api.onIq("get", "host", NS_VERSION, "query", () =>
      xml("query", { xmlns: NS_VERSION },
        xml("name", null, SOFTWARE_NAME),
        xml("version", null, versionText),
        osText ? xml("os", null, osText) : null));
  },
});
