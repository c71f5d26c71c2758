// The request plumbing of the server API: one JSON error shape, a bounded body reader, JSON replies.
// Every refusal is an ApiError, answered as {"error": "<code>", "message": "<what to fix>"}.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBoundedBody } from "../http/body.js";

export type ApiErrorCode =
  | "invalid-request" | "unauthorized" | "forbidden" | "not-found" | "method-not-allowed" | "conflict"
  | "payload-too-large" | "unsupported-media-type" | "rate-limited" | "unavailable" | "internal-error";

const STATUS: Record<ApiErrorCode, number> = {
  "invalid-request": 400, unauthorized: 401, forbidden: 403, "not-found": 404, "method-not-allowed": 405, conflict: 409,
  "payload-too-large": 413, "unsupported-media-type": 415, "rate-limited": 429, unavailable: 503, "internal-error": 500,
};

export class ApiError extends Error {
  readonly status: number;
  constructor(readonly code: ApiErrorCode, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
    this.status = STATUS[code];
  }
}

export const invalid = (message: string) => new ApiError("invalid-request", message);
export const notFound = (message: string) => new ApiError("not-found", message);

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) { res.end(); return; }
  const body = value === undefined ? "" : JSON.stringify(value) + "\n";
  res.writeHead(status, {
    ...(value === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

export function sendError(res: ServerResponse, err: ApiError): void {
  sendJson(res, err.status, { error: err.code, message: err.message }, err.headers);
}

/**
 * Reads the whole body, refusing more than `max` bytes (413) as soon as the declared length or the bytes
 * read pass it. The rest of an oversized body is not read: the connection is closed after the answer.
 */
export async function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const body = await readBoundedBody(req, max);
  if (body === null) throw new ApiError("payload-too-large", `the body must not exceed ${max} bytes`, { connection: "close" });
  return body;
}

/** The body as a JSON object (400 when it is not one; 415 when it is not declared JSON). */
export async function readJsonObject(req: IncomingMessage, max: number): Promise<Record<string, unknown>> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  const raw = await readBody(req, max);
  if (raw.length === 0) return {};
  if (type !== "application/json") throw new ApiError("unsupported-media-type", "the body must be JSON (Content-Type: application/json)");
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch {
    throw invalid("the body is not valid JSON");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw invalid("the body must be a JSON object");
  return value as Record<string, unknown>;
}

/** Field readers: each names the field and what it must be. */
export const field = {
  string(body: Record<string, unknown>, name: string, opts: { min?: number; max: number; pattern?: RegExp; what?: string }): string {
    const v = body[name];
    if (typeof v !== "string") throw invalid(`${name}: a string is required`);
    return checkString(v, name, opts);
  },
  optionalString(body: Record<string, unknown>, name: string, opts: { min?: number; max: number; pattern?: RegExp; what?: string }): string | undefined {
    const v = body[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw invalid(`${name}: a string is required`);
    return checkString(v, name, opts);
  },
  optionalInteger(body: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
    const v = body[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw invalid(`${name}: an integer ${min}-${max} is required`);
    return v;
  },
  optionalStringList(body: Record<string, unknown>, name: string, maxItems: number): string[] {
    const v = body[name];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.length > maxItems || !v.every((x) => typeof x === "string")) {
      throw invalid(`${name}: a list of at most ${maxItems} strings is required`);
    }
    return v as string[];
  },
  /** Refuses fields the operation does not know (a typo must not be silently ignored). */
  only(body: Record<string, unknown>, names: string[]): void {
    for (const k of Object.keys(body)) if (!names.includes(k)) throw invalid(`${k}: unknown field (known: ${names.join(", ")})`);
  },
};

// XML 1.0 cannot carry these (they would break the stanza).
const NOT_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

function checkString(v: string, name: string, opts: { min?: number; max: number; pattern?: RegExp; what?: string }): string {
  const min = opts.min ?? 1;
  if (v.length < min || v.length > opts.max) throw invalid(`${name}: ${min}-${opts.max} characters are required`);
  if (NOT_XML.test(v)) throw invalid(`${name}: contains characters XML cannot carry`);
  if (opts.pattern && !opts.pattern.test(v)) throw invalid(`${name}: ${opts.what ?? "not in the expected form"}`);
  return v;
}
