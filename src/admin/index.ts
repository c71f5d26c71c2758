// The admin module: the admin service (src/admin/service.ts) behind three front ends, the console at
// /admin/ on the HTTP port, the XEP-0133 ad-hoc commands (XEP-0050) and, through the console's API with
// the token in <dataDir>/admin.json, the `hearth` CLI commands that act on a running server.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { defineModule } from "../modules/module.js";
import { AdminService } from "./service.js";
import { mountAdhoc } from "./adhoc.js";
import { createConsole } from "./console.js";

declare module "../modules/module.js" {
  interface ServiceMap { admin: AdminService }
}

/** Where a running server tells the CLI how to reach its admin API (mode 0600: the token is a credential). */
export function adminFile(dataDir: string): string {
  return path.join(dataDir, "admin.json");
}

export interface AdminFile { url: string; token: string; pid: number }

export const adminModule = defineModule({
  name: "admin",
  xep: [
    { spec: "XEP-0050", title: "Ad-Hoc Commands", version: "1.3.0", status: "partial", note: "the XEP-0133 commands on the server domain: one form step, complete or cancel (no prev/next)" },
    {
      spec: "XEP-0133", title: "Service Administration", version: "1.3.1", status: "partial",
      note: "add-user, delete-user, disable-user, reenable-user, change-user-password, end-user-session, announce, get-online-users-num, get-online-users-list, get-registered-users-num, get-disabled-users-num, get-disabled-users-list; admins from admin.accounts",
    },
  ],
  setup(api) {
    const admin = new AdminService(api);
    api.provide("admin", admin);
    mountAdhoc(api, admin);
    const console = createConsole(api, admin);
    api.addHttpHandler("/admin/", (req, res) => console.handle(req, res));
    // A disable written to the store by the CLI without a running server, or by another node, ends the
    // account's sessions on this node within one sample interval.
    api.setInterval(() => admin.sweepDisabled(), api.config.admin.sampleSeconds * 1000);

    const file = adminFile(api.config.dataDir);
    let written = false;
    api.observe("server-started", () => {
      const port = api.httpPort();
      if (port === null) return;
      const bind = api.config.http.bind;
      const host = bind === "0.0.0.0" || bind === "::" ? "127.0.0.1" : bind.includes(":") ? `[${bind}]` : bind;
      const content: AdminFile = { url: `http://${host}:${port}/admin/`, token: console.token, pid: process.pid };
      mkdirSync(api.config.dataDir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(content) + "\n", { mode: 0o600 });
      renameSync(tmp, file);
      written = true;
    });
    api.onUnload(() => {
      if (!written) return;
      try {
        // Only our own: another server on the same data directory may have written it since.
        if ((JSON.parse(readFileSync(file, "utf8")) as AdminFile).token === console.token) rmSync(file, { force: true });
      } catch { /* gone already */ }
    });
  },
});
