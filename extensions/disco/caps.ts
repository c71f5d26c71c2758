// XEP-0115 §5.1: the verification string of an entity's disco#info, and its SHA-1 'ver'.
import { createHash } from "node:crypto";
import type { Element } from "../../src/xml/element.js";
import { NS } from "../../src/xml/ns.js";

export const NS_CAPS = "http://jabber.org/protocol/caps";

export interface CapsIdentity { category: string; type: string; name?: string; lang?: string }

/** "i;octet" collation (RFC 4790 §9.3), which XEP-0115 §5.1 requires for every sort. */
function octetCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function formType(form: Element): string | null {
  for (const f of form.getChildren("field")) {
    if (f.attrs.var === "FORM_TYPE") return f.getChildText("value") ?? "";
  }
  return null;
}

/** S of XEP-0115 §5.1 steps 1–7. Forms without a FORM_TYPE are not extended info and are left out. */
export function verificationString(identities: readonly CapsIdentity[], features: Iterable<string>, extensions: readonly Element[] = []): string {
  let s = "";
  const ids = [...identities].sort((a, b) =>
    octetCompare(a.category, b.category) || octetCompare(a.type, b.type) ||
    octetCompare(a.lang ?? "", b.lang ?? "") || octetCompare(a.name ?? "", b.name ?? ""));
  for (const i of ids) s += `${i.category}/${i.type}/${i.lang ?? ""}/${i.name ?? ""}<`;
  for (const f of [...new Set(features)].sort(octetCompare)) s += `${f}<`;
  const forms = extensions
    .filter((x) => x.name === "x" && x.getNS() === NS.dataForms)
    .map((x) => ({ x, type: formType(x) }))
    .filter((f): f is { x: Element; type: string } => f.type !== null)
    .sort((a, b) => octetCompare(a.type, b.type));
  for (const { x, type } of forms) {
    s += `${type}<`;
    const fields = x.getChildren("field").filter((f) => f.attrs.var !== "FORM_TYPE" && f.attrs.var !== undefined);
    for (const field of fields.sort((a, b) => octetCompare(a.attrs.var, b.attrs.var))) {
      s += `${field.attrs.var}<`;
      for (const v of field.getChildren("value").map((v) => v.getText()).sort(octetCompare)) s += `${v}<`;
    }
  }
  return s;
}

/** §5.1 steps 8–9: SHA-1 over the UTF-8 of S, in Base64. */
export function capsVer(identities: readonly CapsIdentity[], features: Iterable<string>, extensions: readonly Element[] = []): string {
  return createHash("sha1").update(verificationString(identities, features, extensions), "utf8").digest("base64");
}
