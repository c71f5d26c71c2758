// XEP-0363 HTTP File Upload: a service on upload.<host> (modules.upload.domain) hands out slots (iq),
// and the built-in HTTP server takes the file with the slot's token (PUT) and serves it (GET). Slot
// records are in the store; files go through the FileStorage interface (storage.ts), on the local
// filesystem under <dataDir>/upload/ unless another implementation is plugged in.
import path from "node:path";
import { moduleOptions, nonEmpty } from "../../src/config/schema.js";
import { tryParseJid, parseJid, jid } from "../../src/jid/jid.js";
import { defineModule } from "../../src/modules/module.js";
import { xml } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";
import { StanzaError } from "../../src/xml/stanza.js";
import { uploadHandler, isServed } from "./http.js";
import { FilesystemStorage, type FileStorage } from "./storage.js";
import { SlotBook, mediaType, newSlotId, sanitizeFilename, slotSecret, typeAllowed, type Slot } from "./slots.js";

export const NS_UPLOAD = "urn:xmpp:http:upload:0";
export type { FileStorage } from "./storage.js";

function serviceDomain(value: string): string | undefined {
  if (value === "" || value.includes("@")) return undefined;
  return tryParseJid(value.replace("{host}", "example.org"))?.isBare ? value : undefined;
}

function baseUrl(value: string): string | undefined {
  try {
    const u = new URL(value);
    return (u.protocol === "http:" || u.protocol === "https:") && !u.search && !u.hash ? value.replace(/\/+$/, "") : undefined;
  } catch {
    return undefined;
  }
}

const seconds = (def: number, min: number, description: string) =>
  ({ kind: "integer", min, max: 10 * 365 * 86_400, default: def, description }) as const;

export const uploadOptions = moduleOptions("HTTP File Upload (XEP-0363): one service per served host, files served by the built-in HTTP server.", {
  domain: {
    kind: "string",
    default: "upload.{host}",
    expect: 'a domain name, where "{host}" stands for each served host',
    accept: serviceDomain,
    description: 'The upload service domain; "{host}" stands for each served host.',
  },
  publicUrl: {
    kind: "string",
    nullable: true,
    default: null,
    defaultNote: "http://<host>:<http.port>",
    expect: "an http(s) URL without query",
    accept: baseUrl,
    description: 'Base URL clients reach the HTTP port at (a TLS proxy in front of it, e.g. https://files.example.org); "{host}" stands for the served host.',
  },
  path: {
    kind: "string",
    default: "/upload/",
    expect: "a path starting and ending with /",
    accept: (v) => (/^\/([A-Za-z0-9._~-]+\/)+$/.test(v) ? v : undefined),
    description: "Path prefix of upload URLs on the HTTP port.",
  },
  maxFileSize: {
    kind: "integer",
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    default: 104_857_600,
    description: "Largest file a slot is granted for, in bytes (advertised as max-file-size).",
  },
  allowedTypes: {
    kind: "list",
    default: [],
    minItems: 0,
    itemExpect: 'a media type such as "image/png" or "image/*"',
    acceptItem: (v) => (v.endsWith("/*") ? (mediaType(`${v.slice(0, -2)}/x`) ? v.toLowerCase() : undefined) : mediaType(v)),
    description: "Content types a slot may be requested for; empty allows any.",
  },
  quotaBytes: {
    kind: "integer",
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    default: 1_073_741_824,
    description: "Bytes one user may request slots for within quotaWindowSeconds.",
  },
  quotaSlots: {
    kind: "integer",
    min: 1,
    max: 100_000,
    default: 1000,
    description: "Slots one user may request within quotaWindowSeconds.",
  },
  quotaWindowSeconds: seconds(86_400, 1, "The sliding window of the per-user quota, in seconds."),
  slotSeconds: seconds(300, 1, "How long a slot accepts its upload after it was handed out, in seconds."),
  fileExpirySeconds: seconds(30 * 86_400, 0, "How long an uploaded file is served before it is deleted, in seconds; 0 keeps files."),
  secret: {
    kind: "string",
    secret: true,
    nullable: true,
    default: null,
    defaultNote: "generated, kept in the store",
    expect: "a string of at least 16 characters",
    accept: (v) => (v.length >= 16 ? v : undefined),
    description: "HMAC secret the upload tokens are signed with; nodes sharing a store share the generated one.",
  },
  directory: {
    kind: "string",
    nullable: true,
    default: null,
    defaultNote: "<dataDir>/upload",
    expect: "a directory path",
    accept: nonEmpty,
    description: "Where uploaded files are kept.",
  },
});

/** What the mobile adapter (and any other module) uses to hand out slots. */
export interface UploadService {
  /** The largest file a slot is granted for. */
  readonly maxFileSize: number;
  /**
   * A slot for `owner` (a bare JID of a served host), or a StanzaError: not-acceptable with
   * <file-too-large/>, not-acceptable (type), resource-constraint with <retry stamp/> (quota), bad-request.
   */
  requestSlot(owner: string, filename: string, size: number, type: string | undefined): Promise<UploadSlotUrls>;
}

export interface UploadSlotUrls { put: string; get: string; headers: Record<string, string>; expires: number }

declare module "../../src/modules/module.js" {
  interface ServiceMap { upload: UploadService }
}

export const upload = defineModule({
  name: "upload",
  xep: [{ spec: "XEP-0363", title: "HTTP File Upload", version: "1.1.0", status: "complete", note: "header authorization; files expire" }],
  options: uploadOptions,
  async setup(api) {
    const o = api.options;
    if (api.config.http.port === null) {
      api.log.warn("file upload needs the HTTP port (http.port): not served");
      return;
    }
    const services = new Map<string, string>(); // service domain -> served host
    for (const host of api.hosts) services.set(jid("", o.domain.replaceAll("{host}", host)).domain, host);
    const service = api.component([...services.keys()]);
    const map = api.store.map("upload");
    const book = new SlotBook(map, await slotSecret(map, o.secret));
    const storage: FileStorage = new FilesystemStorage(o.directory ?? path.join(api.config.dataDir, "upload"));
    const fileExpiryMs = o.fileExpirySeconds * 1000;
    const quota = { bytes: o.quotaBytes, slots: o.quotaSlots, windowMs: o.quotaWindowSeconds * 1000 };
    if (o.publicUrl === null) {
      api.log.warn("upload URLs point at the plain-HTTP port; behind a TLS proxy set modules.upload.publicUrl");
    }

    const base = (host: string): string => {
      if (o.publicUrl !== null) return o.publicUrl.replaceAll("{host}", host);
      return `http://${host}:${api.httpPort() ?? api.config.http.port ?? 80}`;
    };

    const requestSlot: UploadService["requestSlot"] = async (owner, rawName, size, rawType) => {
      const host = parseJid(owner).domain;
      if (!api.hosts.includes(host)) throw new StanzaError("forbidden", "only users of this server may upload", "auth");
      const filename = sanitizeFilename(rawName);
      if (!filename) throw new StanzaError("bad-request", "the filename is empty", "modify");
      if (!Number.isSafeInteger(size) || size < 1) throw new StanzaError("bad-request", "size must be a positive integer", "modify");
      // XEP-0363 §3: too large a file is refused with the service's maximum.
      if (size > o.maxFileSize) {
        throw new StanzaError("not-acceptable", `the file is larger than ${o.maxFileSize} bytes`, "modify",
          xml("file-too-large", { xmlns: NS_UPLOAD }, xml("max-file-size", null, String(o.maxFileSize))));
      }
      const type = rawType === undefined || rawType === "" ? "application/octet-stream" : mediaType(rawType);
      if (!type) throw new StanzaError("bad-request", "the content-type is not a media type", "modify");
      if (!typeAllowed(type, o.allowedTypes)) throw new StanzaError("not-acceptable", `files of type ${type} are not accepted`, "modify");
      const now = Date.now();
      const id = newSlotId();
      const retryAt = await book.reserve(owner, id, size, quota, now);
      if (retryAt !== null) {
        // XEP-0363 §3: a quota reached answers resource-constraint, with when to retry.
        throw new StanzaError("resource-constraint", "upload quota reached", "wait",
          xml("retry", { xmlns: NS_UPLOAD, stamp: new Date(retryAt).toISOString() }));
      }
      const slot: Slot = { id, owner, filename, size, type, created: now, expires: now + o.slotSeconds * 1000, state: "pending" };
      await book.create(slot);
      const url = `${base(host)}${o.path}${id}/${encodeURIComponent(filename)}`;
      return { put: url, get: url, headers: { Authorization: `Bearer ${book.token(slot)}` }, expires: slot.expires };
    };
    api.provide("upload", { requestSlot, maxFileSize: o.maxFileSize });

    service.onIq("get", "host", NS_UPLOAD, "request", async (ev) => {
      const req = ev.stanza.getChild("request", NS_UPLOAD)!;
      const size = /^\d{1,16}$/.test(req.attrs.size ?? "") ? Number(req.attrs.size) : NaN;
      const slot = await requestSlot(ev.from.bareString(), String(req.attrs.filename ?? ""), size, req.attrs["content-type"]);
      const put = xml("put", { url: slot.put });
      for (const [name, value] of Object.entries(slot.headers)) put.cnode(xml("header", { name }, value));
      return xml("slot", { xmlns: NS_UPLOAD }, put, xml("get", { url: slot.get }));
    });

    // XEP-0363 §2: the service's identity, feature and max-file-size form (XEP-0128).
    service.onIq("get", "host", NS.discoInfo, "query", (ev) => {
      if (ev.stanza.getChild("query", NS.discoInfo)?.attrs.node) throw new StanzaError("item-not-found");
      return xml("query", { xmlns: NS.discoInfo },
        xml("identity", { category: "store", type: "file", name: "HTTP File Upload" }),
        ...[NS.discoInfo, NS_UPLOAD].map((f) => xml("feature", { var: f })),
        xml("x", { xmlns: NS.dataForms, type: "result" },
          xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", null, NS_UPLOAD)),
          xml("field", { var: "max-file-size" }, xml("value", null, String(o.maxFileSize)))));
    });
    service.onIq("get", "host", NS.discoItems, "query", () => xml("query", { xmlns: NS.discoItems }));
    service.onIq("get", "host", NS.ping, "ping", () => true);
    api.fold("disco-items", (acc, ctx) => {
      if (ctx.to.local || ctx.node !== null) return acc;
      for (const [domain, host] of services) if (host === ctx.host) acc.push(xml("item", { jid: domain, name: "HTTP File Upload" }));
      return acc;
    });

    api.addHttpHandler(o.path, uploadHandler(book, storage, { prefix: o.path, fileExpiryMs }, api.log));

    // Expiry: slots never used, and files past their time (with their records). One sweep at a time.
    let sweeping = false;
    const sweep = async (): Promise<void> => {
      if (sweeping) return;
      sweeping = true;
      try {
        const now = Date.now();
        const live = new Set<string>();
        for (const slot of await book.all()) {
          const dead = slot.state === "stored" ? !isServed(slot, fileExpiryMs, now) : slot.expires + 3_600_000 < now;
          if (dead) {
            await storage.delete(slot.id);
            await book.delete(slot.id);
          } else live.add(slot.id);
        }
        // Files without a record (their record was deleted, or another store's data dir): removed too.
        for await (const f of storage.list()) if (!live.has(f.key)) await storage.delete(f.key);
      } finally {
        sweeping = false;
      }
    };
    const every = Math.max(1000, Math.min(3_600_000, fileExpiryMs === 0 ? 3_600_000 : fileExpiryMs / 2));
    api.setInterval(sweep, every);
  },
});


