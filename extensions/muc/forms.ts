// XEP-0004 data forms, as much as the room configuration and room info forms need.
import { xml, type Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";

export type FieldType = "boolean" | "fixed" | "hidden" | "jid-multi" | "jid-single" | "list-multi" | "list-single" | "text-multi" | "text-private" | "text-single";

export interface FormField {
  var: string;
  type?: FieldType;
  label?: string;
  values: string[];
  options?: Array<{ value: string; label?: string }>;
}

export function formElement(type: "form" | "result" | "submit", formType: string, fields: FormField[], title?: string, instructions?: string): Element {
  const x = xml("x", { xmlns: NS.dataForms, type });
  if (title) x.cnode(xml("title", null, title));
  if (instructions) x.cnode(xml("instructions", null, instructions));
  x.cnode(xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", null, formType)));
  for (const f of fields) {
    const field = xml("field", { var: f.var, type: f.type, label: f.label });
    for (const o of f.options ?? []) field.cnode(xml("option", { label: o.label }, xml("value", null, o.value)));
    for (const v of f.values) field.cnode(xml("value", null, v));
    x.cnode(field);
  }
  return x;
}

/** The submitted values by field var (FORM_TYPE included). */
export function formValues(x: Element): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const f of x.getChildren("field")) {
    const name = f.attrs.var;
    if (typeof name !== "string") continue;
    out.set(name, f.getChildren("value").map((v) => v.getText()));
  }
  return out;
}

/** XEP-0004 §3.3: boolean values are "1"/"true" or "0"/"false". Returns undefined for anything else. */
export function parseBoolean(v: string | undefined): boolean | undefined {
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  return undefined;
}

export const booleanValue = (b: boolean): string => (b ? "1" : "0");
