import { rosterModule } from "./roster.js";
import { presenceModule } from "./presence.js";
import { messageModule } from "./message.js";
import { retentionModule } from "./retention.js";

/** RFC 6121 as built-in modules on the same API as extensions. */
export const coreModules = [rosterModule, presenceModule, messageModule, retentionModule];
