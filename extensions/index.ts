// Every extension module shipped with the server, in load order.
import type { ModuleDefinition } from "../src/modules/module.js";
import { disco } from "./disco/index.js";
import { ping } from "./ping/index.js";
import { version } from "./version/index.js";
import { time } from "./time/index.js";
import { register } from "./register/index.js";
import { vcard } from "./vcard/index.js";
import { private_ } from "./private/index.js";
import { last } from "./last/index.js";
import { muc } from "./muc/index.js";
import { mam } from "./mam/index.js";
import { carbons } from "./carbons/index.js";
import { blocking } from "./blocking/index.js";
import { conversations } from "./conversations/index.js";
import { retraction } from "./retraction/index.js";
import { upload } from "./upload/index.js";
import { extdisco } from "./extdisco/index.js";
import { push } from "./push/index.js";
import { caps } from "./caps/index.js";
import { pep } from "./pep/index.js";
import { bookmarks } from "./bookmarks/index.js";
import { avatar } from "./avatar/index.js";

export const extensions: ModuleDefinition<any>[] = [disco, ping, version, time, register, vcard, private_, last, muc, mam, carbons, blocking, conversations, retraction, upload, extdisco, push, caps, pep, bookmarks, avatar];
