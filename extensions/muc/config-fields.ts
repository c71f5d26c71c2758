// Helpers for the muc#roomconfig fields each feature contributes (XEP-0045 §16.5.3).
import { StanzaError } from "../../src/xml/stanza.js";
import { booleanValue, parseBoolean } from "./forms.js";
import type { ConfigField } from "./service.js";
import type { RoomConfig } from "./room.js";

type KeysOf<T> = { [K in keyof RoomConfig]: RoomConfig[K] extends T ? K : never }[keyof RoomConfig];

export function booleanField(name: string, label: string, key: KeysOf<boolean>): ConfigField {
  return {
    var: name, type: "boolean", label,
    read: (c) => [booleanValue(c[key])],
    write: (c, v) => {
      const b = parseBoolean(v[0]);
      if (b === undefined) throw new StanzaError("not-acceptable", `${name}: expected a boolean`);
      c[key] = b;
    },
  };
}

export function textField(name: string, label: string, key: KeysOf<string>, type: "text-single" | "text-private" = "text-single", max = 1024): ConfigField {
  return {
    var: name, type, label,
    read: (c) => [c[key]],
    write: (c, v) => {
      const s = v.join("\n");
      if (s.length > max) throw new StanzaError("not-acceptable", `${name}: at most ${max} characters`);
      (c[key] as string) = s;
    },
  };
}

export function oneOf<T extends string>(v: string | undefined, allowed: readonly T[], field: string): T {
  if (v === undefined || !(allowed as readonly string[]).includes(v)) throw new StanzaError("not-acceptable", `${field}: expected one of ${allowed.join(", ")}`);
  return v as T;
}

/** A non-negative integer; `none` (and empty) read as `noneValue`. */
export function count(v: string | undefined, field: string, noneValue: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined || v === "" || v === "none") return noneValue;
  if (!/^\d+$/.test(v)) throw new StanzaError("not-acceptable", `${field}: expected a number`);
  const n = Number(v);
  if (n > max) throw new StanzaError("not-acceptable", `${field}: at most ${max}`);
  return n;
}
