// Write coalescing: everything queued for one socket during an event-loop turn
// goes out in a single socket.write() at the end of that turn (setImmediate),
// which keeps syscalls and per-write overhead out of the hot path.
import type { Socket } from 'node:net';

export interface Flushable {
  out: string;
  readonly sock: Socket;
}

let dirty: Flushable[] = [];
let scheduled = false;

function flushAll(): void {
  const list = dirty;
  dirty = [];
  scheduled = false;
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!;
    const s = c.out;
    c.out = '';
    if (s.length !== 0 && !c.sock.destroyed && c.sock.writable) c.sock.write(s);
  }
}

export function queueOut(c: Flushable, data: string): void {
  if (c.out.length === 0) {
    c.out = data;
    dirty.push(c);
    if (!scheduled) {
      scheduled = true;
      setImmediate(flushAll);
    }
  } else {
    c.out += data;
  }
}

/** Write whatever is queued for c right now (e.g. before ending the socket). */
export function flushNow(c: Flushable): void {
  if (c.out.length !== 0) {
    const s = c.out;
    c.out = '';
    if (!c.sock.destroyed && c.sock.writable) c.sock.write(s);
  }
}
