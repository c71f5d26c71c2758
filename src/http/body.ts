// A request body read with a size limit, shared by the HTTP endpoints that take one (BOSH, the server API,
// the admin console); each answers a body that is too large in its own way.
import type { IncomingMessage } from "node:http";

/**
 * The body of `req`, or null when it is larger than `max` bytes (declared so, or found so while reading;
 * the request is then paused and not read further). Rejects when the request fails.
 */
export function readBoundedBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > max) {
    req.pause();
    return Promise.resolve(null);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on("data", (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > max) {
        done = true;
        req.pause();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => { if (!done) { done = true; resolve(Buffer.concat(chunks)); } });
    req.on("error", (err) => { if (!done) { done = true; reject(err); } });
  });
}
