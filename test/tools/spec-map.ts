// Which specifications a test scenario exercises, for the measured compliance table.
//
// A scenario counts for every spec its full title names (`XEP-0198`, `RFC 6120`, anywhere in the
// describe() chain or the it() title), plus the specs a rule below gives its file (or a describe block
// of it). Rules are for tests whose titles do not name the spec they exercise; prefer naming it in the
// title.

export interface SpecRule {
  /** Test file, from the repository root, as in the source tree: "test/c2s.test.ts". */
  file: string;
  /** Only scenarios whose full title contains this text. */
  title?: string;
  specs: string[];
}

const MOBILE = "hearth mobile v1";

export const specRules: SpecRule[] = [
  { file: "test/c2s.test.ts", specs: ["RFC 6120"] },
  { file: "test/c2s.test.ts", title: "TLS and SASL", specs: ["RFC 7590"] },
  { file: "test/c2s.test.ts", title: "timeouts and TLS policy", specs: ["RFC 7590"] },
  { file: "test/sasl.test.ts", specs: ["RFC 6120"] },
  { file: "test/sasl.test.ts", title: "SCRAM", specs: ["RFC 5802"] },
  { file: "test/sasl2.test.ts", specs: ["XEP-0388"] },
  { file: "test/fast.test.ts", specs: ["XEP-0484"] },
  { file: "test/channel-binding.test.ts", specs: ["RFC 5802", "RFC 5929", "RFC 9266"] },
  { file: "test/cert-reload.test.ts", specs: ["RFC 7590"] },
  { file: "test/jid.test.ts", specs: ["RFC 7622"] },
  { file: "test/xml-parser.test.ts", specs: ["RFC 6120"] },
  { file: "test/hostile-input.test.ts", title: "hostile input corpus", specs: ["RFC 6120"] },
  { file: "test/fuzz-smoke.test.ts", specs: ["RFC 6120"] },
  { file: "test/namespace-safety.test.ts", specs: ["RFC 6120"] },
  { file: "test/bosh.test.ts", specs: ["XEP-0124", "XEP-0206"] },
  { file: "test/s2s.test.ts", specs: ["RFC 6120", "XEP-0220"] },
  { file: "test/s2s-im.test.ts", specs: ["RFC 6120", "RFC 6121"] },
  { file: "test/s2s-interop.test.ts", specs: ["RFC 6120"] },
  { file: "test/s2s-limits.test.ts", specs: ["RFC 6120"] },
  { file: "test/s2s-external.test.ts", specs: ["RFC 6120"] },
  { file: "test/s2s-direct-tls.test.ts", specs: ["RFC 6120"] },
  { file: "test/s2s-cluster.test.ts", specs: ["RFC 6120"] },
  { file: "test/conversations.test.ts", specs: ["XEP-0333", "XEP-0184"] },
  { file: "test/mobile.test.ts", specs: [MOBILE] },
  { file: "test/mobile-blocking.test.ts", specs: [MOBILE, "XEP-0191"] },
  { file: "test/mobile-errors.test.ts", specs: [MOBILE] },
  { file: "test/mobile-groups.test.ts", specs: [MOBILE] },
  { file: "test/mobile-media.test.ts", specs: [MOBILE] },
  { file: "test/mobile-sync.test.ts", specs: [MOBILE] },
  { file: "test/push-webhook.test.ts", specs: [MOBILE] },
  // Scenarios whose titles describe a spec's behaviour without naming it.
  { file: "test/im.test.ts", title: "versions", specs: ["XEP-0237"] },
  { file: "test/im.test.ts", title: "offline", specs: ["XEP-0160"] },
  { file: "test/im.test.ts", title: "with delay stamps", specs: ["XEP-0203"] },
  { file: "test/mam.test.ts", title: "paging through", specs: ["XEP-0059"] },
  { file: "test/muc-mam.test.ts", title: "paging through", specs: ["XEP-0059"] },
  { file: "test/mam.test.ts", title: "full text", specs: ["XEP-0431"] },
  { file: "test/muc-mam.test.ts", title: "full text", specs: ["XEP-0431"] },
  { file: "test/mam.test.ts", title: "with its delay stamp", specs: ["XEP-0203"] },
  { file: "test/muc.test.ts", title: "occupant-id", specs: ["XEP-0421"] },
  { file: "test/muc.test.ts", title: "stanza-id", specs: ["XEP-0359"] },
  { file: "test/muc-mam.test.ts", title: "stanza-ids", specs: ["XEP-0359"] },
  { file: "test/mobile-media.test.ts", title: "OOB", specs: ["XEP-0066"] },
  { file: "test/s2s.test.ts", title: "dialback key", specs: ["XEP-0185"] },
  { file: "test/pep.test.ts", title: "whitelist", specs: ["XEP-0223"] },
  { file: "test/bookmarks.test.ts", specs: ["XEP-0223"] },
  { file: "conformance/slixmpp.test.ts", title: "subscribes, sees presence", specs: ["RFC 6121"] },
  { file: "conformance/slixmpp-pep.test.ts", specs: ["XEP-0163", "XEP-0084", "XEP-0398", "XEP-0402", "XEP-0048"] },
];

/** "XEP-0198", "RFC 6120" references in a title, in order of first appearance. */
export function specsInTitle(title: string): string[] {
  const found: string[] = [];
  for (const m of title.matchAll(/\b(?:(XEP)-(\d{4})|(RFC) ?(\d{3,5}))\b/g)) {
    const spec = m[1] ? `XEP-${m[2]}` : `RFC ${m[4]}`;
    if (!found.includes(spec)) found.push(spec);
  }
  return found;
}

/** The specs one scenario exercises: its title's references and its file's rules. */
export function specsOf(file: string, fullTitle: string, rules: SpecRule[] = specRules): string[] {
  const specs = specsInTitle(fullTitle);
  for (const r of rules) {
    if (r.file !== file || (r.title !== undefined && !fullTitle.includes(r.title))) continue;
    for (const s of r.specs) if (!specs.includes(s)) specs.push(s);
  }
  return specs.sort();
}
