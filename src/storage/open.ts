import type { Config } from "../config/config.js";
import type { Store } from "./types.js";
import { openSqliteStore } from "./sqlite.js";

/** Opens the configured store driver. */
export async function openStore(config: Config): Promise<Store> {
  switch (config.storage.driver) {
    case "sqlite":
      return openSqliteStore({ path: config.storage.sqlite.path });
  }
}
