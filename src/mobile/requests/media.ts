// Media uploads (media.proto): a slot of the upload module's XEP-0363 service, so a file a phone sends
// is stored and served exactly like one an XMPP client sends.
import { ErrorCode, type RequestUpload, type UploadSlot } from "../schema.js";
import { MobileError, fromCondition, invalid } from "../errors.js";
import type { MobileSession } from "../session.js";
import { StanzaError } from "../../xml/stanza.js";

export async function requestUpload(s: MobileSession, req: RequestUpload): Promise<UploadSlot> {
  const upload = s.ctx.api.useOptional("upload");
  if (!upload) throw new MobileError(ErrorCode.UNSUPPORTED, "this server has no upload service");
  if (typeof req.filename !== "string" || req.filename === "") throw invalid("filename is required");
  if (!Number.isSafeInteger(req.size) || req.size < 1) throw invalid("size must be at least 1");
  try {
    const slot = await upload.requestSlot(s.owner, req.filename, req.size, req.contentType || undefined);
    return {
      putUrl: slot.put,
      putHeaders: Object.entries(slot.headers).map(([name, value]) => ({ name, value })),
      getUrl: slot.get,
      expiresAt: slot.expires,
    };
  } catch (err) {
    if (!(err instanceof StanzaError)) throw err;
    if (err.app?.name === "file-too-large") throw invalid(`size is over max_upload_bytes (${upload.maxFileSize})`);
    if (err.condition === "resource-constraint") {
      const stamp = Date.parse(err.app?.attrs.stamp ?? "");
      const wait = Number.isFinite(stamp) ? Math.max(1000, stamp - Date.now()) : 60_000;
      throw new MobileError(ErrorCode.RATE_LIMITED, "upload quota reached", Math.min(wait, 0xffffffff));
    }
    throw fromCondition(err.condition, err.text ?? "", "upload");
  }
}
