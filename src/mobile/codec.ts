// Frames of the mobile protocol: one Envelope per WebSocket binary message. Decoding never throws: a
// frame that is too large, not protobuf, or carries no payload this server knows becomes a coded
// error (schemas/proto/README.md "Error codes") that the session answers, and the session goes on.
import { ErrorCode, schema, type Envelope, type PayloadName, type Payloads } from "./schema.js";

export type DecodeResult =
  | { ok: true; envelope: Envelope }
  | { ok: false; requestId: number; code: ErrorCode; message: string };

const TO_OBJECT = { longs: Number, enums: Number, defaults: true, oneofs: true } as const;

/**
 * The request_id of a frame that cannot be decoded as a whole (e.g. too large): field 1 is a varint
 * and encoders write fields in number order, so it is the frame's first bytes when present.
 */
export function peekRequestId(frame: Uint8Array): number {
  if (frame.length < 2 || frame[0] !== 0x08) return 0;
  let value = 0;
  for (let i = 1, shift = 0; i < frame.length && i <= 5; i++, shift += 7) {
    const b = frame[i]!;
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return value <= 0xffffffff ? value : 0;
  }
  return 0;
}

export function decodeFrame(frame: Uint8Array, maxBytes: number): DecodeResult {
  if (frame.length > maxBytes) {
    return { ok: false, requestId: peekRequestId(frame), code: ErrorCode.FRAME_TOO_LARGE, message: `frames are limited to ${maxBytes} bytes; this one has ${frame.length}` };
  }
  const { envelope } = schema();
  let obj: Record<string, unknown>;
  try {
    obj = envelope.toObject(envelope.decode(frame), TO_OBJECT);
  } catch (err) {
    return { ok: false, requestId: peekRequestId(frame), code: ErrorCode.BAD_FRAME, message: `not a hearth.mobile.v1.Envelope: ${(err as Error).message}` };
  }
  const requestId = typeof obj.requestId === "number" ? obj.requestId : 0;
  const name = obj.payload as PayloadName | undefined;
  if (name === undefined) {
    return { ok: false, requestId, code: ErrorCode.UNKNOWN_PAYLOAD, message: "the envelope carries no payload this server knows" };
  }
  return { ok: true, envelope: { requestId, payload: name, body: obj[name] } as Envelope };
}

export function encodeFrame<K extends PayloadName>(requestId: number, name: K, body: Payloads[K]): Uint8Array {
  const { envelope } = schema();
  return envelope.encode({ requestId, [name]: body }).finish();
}

export function errorBody(code: ErrorCode, message: string, retryAfterMs = 0): Payloads["error"] {
  return { code, message, retryAfterMs };
}
