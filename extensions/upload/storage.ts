// Where uploaded files live. The upload module only speaks to this interface, so a store other than the
// local filesystem (an S3-compatible bucket) is one more implementation of it:
//   - keys are opaque slot ids (URL-safe base64, no path separators), one file per key;
//   - `put` consumes a byte stream and makes the file visible only when the stream ended without error
//     (a failed or aborted upload leaves nothing behind: write to a temporary object, then rename/commit);
//   - `get` returns a readable stream, or null when there is no such file;
//   - `list` walks every stored file with its creation time, for the expiry sweep;
//   - every method may be called concurrently for different keys; callers never call `put` twice for one key.
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

export interface StoredFile {
  key: string;
  size: number;
  /** When the file was stored, ms since the epoch. */
  created: number;
}

export interface FileStorage {
  put(key: string, body: Readable): Promise<void>;
  get(key: string): Promise<Readable | null>;
  stat(key: string): Promise<StoredFile | null>;
  /** false when there was nothing to delete. */
  delete(key: string): Promise<boolean>;
  list(): AsyncIterable<StoredFile>;
}

const KEY = /^[A-Za-z0-9_-]{8,64}$/;
const PARTIAL = ".part";

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new Error(`invalid storage key ${JSON.stringify(key)}`);
  return key;
}

/** Files in one directory, named by key; an upload in progress is `<key>.part` until it completed. */
export class FilesystemStorage implements FileStorage {
  private ready: Promise<unknown> | null = null;

  constructor(private readonly dir: string) {}

  private ensureDir(): Promise<unknown> {
    return (this.ready ??= mkdir(this.dir, { recursive: true, mode: 0o700 }));
  }

  private file(key: string): string {
    return path.join(this.dir, checkKey(key));
  }

  async put(key: string, body: Readable): Promise<void> {
    await this.ensureDir();
    const final = this.file(key);
    const partial = final + PARTIAL;
    try {
      await pipeline(body, createWriteStream(partial, { flags: "wx", mode: 0o600 }));
      await rename(partial, final);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
  }

  async get(key: string): Promise<Readable | null> {
    const file = this.file(key);
    if (!(await this.stat(key))) return null;
    return createReadStream(file);
  }

  async stat(key: string): Promise<StoredFile | null> {
    try {
      const s = await stat(this.file(key));
      return s.isFile() ? { key, size: s.size, created: s.mtimeMs } : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  }

  async delete(key: string): Promise<boolean> {
    const existed = (await this.stat(key)) !== null;
    await rm(this.file(key), { force: true });
    return existed;
  }

  async *list(): AsyncIterable<StoredFile> {
    await this.ensureDir();
    for (const name of await readdir(this.dir)) {
      // A partial file older than any upload can take is left by a crash: the sweep removes it as well.
      const key = name.endsWith(PARTIAL) ? name.slice(0, -PARTIAL.length) : name;
      if (!KEY.test(key)) continue;
      try {
        const s = await stat(path.join(this.dir, name));
        if (name === key) yield { key, size: s.size, created: s.mtimeMs };
        else if (Date.now() - s.mtimeMs > 86_400_000) await rm(path.join(this.dir, name), { force: true });
      } catch {
        // removed meanwhile
      }
    }
  }
}
