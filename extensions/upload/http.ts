// The HTTP side of XEP-0363 on the built-in HTTP server: PUT into a slot with its token, GET/HEAD of
// stored files with headers that keep a browser from running what it downloads, and CORS for web clients.
import type { IncomingMessage, ServerResponse } from "node:http";
import { Transform, type TransformCallback } from "node:stream";
import type { Logger } from "../../src/log.js";
import type { FileStorage } from "./storage.js";
import type { Slot, SlotBook } from "./slots.js";

export interface HttpOptions {
  prefix: string;
  /** How long a stored file is served, ms; 0: until deleted. */
  fileExpiryMs: number;
}

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, HEAD, PUT, OPTIONS",
  "access-control-allow-headers": "Authorization, Content-Type, Content-Length",
  "access-control-max-age": "86400",
};

/** Media types a browser may show inline; everything else is offered as a download. */
const INLINE = /^(image\/(png|jpeg|gif|webp|avif|heic|heif)|video\/[a-z0-9.+-]+|audio\/[a-z0-9.+-]+|text\/plain)$/;

/** Counts the bytes passing through and fails as soon as there are more than `limit`. */
class SizeCap extends Transform {
  seen = 0;
  constructor(private readonly limit: number) { super(); }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) done(Object.assign(new Error("body larger than the slot"), { status: 413 }));
    else done(null, chunk);
  }
  override _flush(done: TransformCallback): void {
    done(this.seen === this.limit ? null : Object.assign(new Error("body shorter than the slot"), { status: 400 }));
  }
}

function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff", ...CORS, ...extra });
  res.end(`${text}\n`);
}

/** RFC 6266 §4.3: an ASCII fallback and the UTF-8 name (RFC 8187). */
function disposition(slot: Slot): string {
  const kind = INLINE.test(slot.type) ? "inline" : "attachment";
  const ascii = slot.filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(slot.filename)}`;
}

export function isServed(slot: Slot, fileExpiryMs: number, now: number): boolean {
  return slot.state === "stored" && (fileExpiryMs === 0 || slot.stored! + fileExpiryMs > now);
}

export function uploadHandler(book: SlotBook, storage: FileStorage, opts: HttpOptions, log: Logger) {
  const put = async (req: IncomingMessage, res: ServerResponse, slot: Slot): Promise<void> => {
    // A refused body is not read: the connection goes with it, unless the upload succeeds.
    res.setHeader("connection", "close");
    // XEP-0363 §4: the credential comes back in the header the slot named.
    const auth = req.headers.authorization ?? "";
    if (!auth.startsWith("Bearer ") || !book.verify(slot, auth.slice(7))) return plain(res, 403, "wrong or missing upload token");
    if (slot.state === "stored") return plain(res, 409, "this slot was used already");
    if (slot.expires < Date.now()) return plain(res, 410, "this slot has expired");
    const lengthHeader = req.headers["content-length"];
    if (lengthHeader === undefined) return plain(res, 411, "Content-Length is required");
    const length = Number(lengthHeader);
    if (!/^\d+$/.test(lengthHeader) || length > slot.size) return plain(res, 413, `this slot takes ${slot.size} bytes`);
    if (length !== slot.size) return plain(res, 400, `this slot takes ${slot.size} bytes`);
    const type = req.headers["content-type"];
    if (type !== undefined && type.split(";")[0]!.trim().toLowerCase() !== slot.type) {
      return plain(res, 415, `this slot takes ${slot.type}`);
    }
    if (!(await book.claim(slot.id, Date.now()))) return plain(res, 409, "this slot is in use");
    const cap = new SizeCap(slot.size);
    req.on("error", (err) => cap.destroy(err));
    try {
      await storage.put(slot.id, req.pipe(cap));
    } catch (err) {
      await book.finish(slot.id, null);
      const status = (err as { status?: number }).status;
      if (status) return plain(res, status, (err as Error).message, { connection: "close" });
      log.warn({ err, slot: slot.id }, "upload failed");
      return plain(res, 500, "the upload could not be stored", { connection: "close" });
    }
    await book.finish(slot.id, Date.now());
    res.removeHeader("connection");
    plain(res, 201, "created");
  };

  const get = async (req: IncomingMessage, res: ServerResponse, slot: Slot): Promise<void> => {
    if (!isServed(slot, opts.fileExpiryMs, Date.now())) return plain(res, 404, "not found");
    const file = await storage.stat(slot.id);
    if (!file) return plain(res, 404, "not found");
    const headers = {
      ...CORS,
      "content-type": slot.type,
      "content-length": String(file.size),
      "content-disposition": disposition(slot),
      "x-content-type-options": "nosniff",
      // Nothing in a served file may load, run or frame anything.
      "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
      "referrer-policy": "no-referrer",
      "cache-control": "private, max-age=86400, immutable",
      etag: `"${slot.id}"`,
    };
    if (req.headers["if-none-match"] === headers.etag) { res.writeHead(304, headers); res.end(); return; }
    if (req.method === "HEAD") { res.writeHead(200, headers); res.end(); return; }
    const body = await storage.get(slot.id);
    if (!body) return plain(res, 404, "not found");
    res.writeHead(200, headers);
    body.on("error", (err) => { log.warn({ err, slot: slot.id }, "reading an upload failed"); res.destroy(); });
    body.pipe(res);
  };

  return (req: IncomingMessage, res: ServerResponse): void => {
    const handle = async (): Promise<void> => {
      const method = req.method ?? "GET";
      // Fetch §4.8: the preflight of a web client's PUT with an Authorization header.
      if (method === "OPTIONS") { res.writeHead(204, CORS); res.end(); return; }
      if (!["GET", "HEAD", "PUT"].includes(method)) return plain(res, 405, "method not allowed", { allow: "GET, HEAD, PUT, OPTIONS" });
      const rest = (req.url ?? "").split("?")[0]!.slice(opts.prefix.length);
      const [id, name, ...more] = rest.split("/");
      const slot = id && name && more.length === 0 && /^[A-Za-z0-9_-]{8,64}$/.test(id) ? await book.get(id) : null;
      if (!slot || decodeURIComponentSafe(name!) !== slot.filename) return plain(res, 404, "not found");
      if (method === "PUT") await put(req, res, slot);
      else await get(req, res, slot);
    };
    handle().catch((err) => {
      log.error({ err }, "upload request failed");
      plain(res, 500, "internal error", { connection: "close" });
    });
  };
}

function decodeURIComponentSafe(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}
