// Resource binding (RFC 6120 §7) for every protocol: one full JID, one session, the configured winner.
import type { Jid } from "../jid/jid.js";
import type { SessionRegistry } from "./registry.js";
import type { Session } from "./session.js";

/** c2s.resourceConflict: who keeps a full JID that a second session asks for (RFC 6120 §7.7.2.2). */
export type ResourceConflictPolicy = "kick-old" | "refuse";

/**
 * Whether `session` may take `full`: false when another session holds it and the policy is `refuse`.
 * Under `kick-old` the holder is ended through `displace` (by default with a `conflict` stream error,
 * the RFC 6120 §7.7.2.2 cue) before the caller sets
 * `session.jid` and adds it to the registry.
 */
export function claimResource(
  sessions: SessionRegistry,
  session: Session,
  full: Jid,
  policy: ResourceConflictPolicy,
  displace: (holder: Session) => void = (holder) => holder.close("conflict", "replaced by a new session"),
): boolean {
  const holder = sessions.get(full);
  if (!holder || holder === session) return true;
  if (policy === "refuse") return false;
  displace(holder);
  return true;
}

