// Checks of request fields: a bad field is INVALID_ARGUMENT naming the field.
import { tryParseJid, type Jid } from "../../jid/jid.js";
import { invalid } from "../errors.js";
import type { MobileSession } from "../session.js";

/** A bare JID from a field: "bob@example.com", or "bob" on the session's own domain. */
export function bareJid(s: MobileSession, value: string, field: string): Jid {
  if (typeof value !== "string" || value === "" || value.length > 3071) throw invalid(`${field}: a bare JID is required`);
  const text = value.includes("@") || value.includes(".") ? value : `${value}@${s.host}`;
  const j = tryParseJid(text);
  if (!j || j.local === "") throw invalid(`${field}: "${value}" is not a user or group JID`);
  if (j.resource !== "") throw invalid(`${field}: a bare JID is required, not a full JID`);
  return j;
}

/** An id chosen by the client: 1-64 printable characters. */
export function clientId(value: string, field: string): string {
  if (typeof value !== "string" || value.length < 1 || value.length > 64 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw invalid(`${field}: 1-64 printable characters are required`);
  }
  return value;
}

export function text(value: string, field: string, max: number): string {
  if (typeof value !== "string") throw invalid(`${field}: a string is required`);
  if (value.length > max) throw invalid(`${field}: at most ${max} characters`);
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/.test(value)) throw invalid(`${field}: characters XML cannot carry`);
  return value;
}

export function seqField(value: number, field: string, min = 1): number {
  if (!Number.isSafeInteger(value) || value < min) throw invalid(`${field}: must be a seq >= ${min}`);
  return value;
}
