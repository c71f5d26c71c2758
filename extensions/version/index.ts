// XEP-0092: Software Version of the server.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import os from "node:os";
import { defineModule } from "../../src/modules/module.js";
import { xml } from "../../src/xml/element.js";

export const NS_VERSION = "jabber:iq:version";
export const SOFTWARE_NAME = "hearth";

export interface VersionOptions {
  /** XEP-0092 §5 (Security Considerations): revealing the OS helps attackers, so it is off by default. */
  showOs: boolean;
}

function parseOptions(raw: unknown): VersionOptions {
  const o = (raw ?? {}) as Record<string, unknown>;
  if (typeof o !== "object" || Array.isArray(o)) throw new Error("expected an object");
  if (o.showOs !== undefined && typeof o.showOs !== "boolean") throw new Error("showOs must be true or false");
  return { showOs: o.showOs === true };
}

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

export const version = defineModule<VersionOptions>({
  name: "version",
  xep: [{ spec: "XEP-0092", title: "Software Version", version: "1.1", status: "complete" }],
  options: parseOptions,
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
