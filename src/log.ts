// Logging: pino JSON lines on stdout, or one human-readable line per entry (log.format; auto: on a terminal).
import { isThenable } from "./events/hooks.js";
import pino from "pino";
import type { Config } from "./config/config.js";

export type Logger = pino.Logger;

/** `tap` sees every JSON line written (the admin console keeps the recent warnings and errors from it). */
export function createLogger(config: Config["log"], dest?: pino.DestinationStream, tap?: (line: string) => void): Logger {
  const options: pino.LoggerOptions = { level: config.level, timestamp: pino.stdTimeFunctions.isoTime };
  const out = dest ?? pino.destination({ dest: 1, sync: true });
  const pretty = config.format === "pretty" || (config.format === "auto" && dest === undefined && process.stdout.isTTY === true);
  const color = dest === undefined && process.stdout.isTTY === true && !process.env.NO_COLOR;
  const sink = pretty ? prettyStream(out, color) : out;
  // The tap reads what pino writes (JSON), before a pretty stream reformats it.
  return pino(options, tap === undefined ? sink : { write(chunk: string) { sink.write(chunk); tap(chunk); } });
}

/** A logger that discards everything, for tests. */
export const nullLogger: Logger = pino({ level: "silent" });

const LEVELS: Record<number, { label: string; color: string }> = {
  10: { label: "TRACE", color: "\x1b[90m" },
  20: { label: "DEBUG", color: "\x1b[36m" },
  30: { label: "INFO ", color: "\x1b[32m" },
  40: { label: "WARN ", color: "\x1b[33m" },
  50: { label: "ERROR", color: "\x1b[31m" },
  60: { label: "FATAL", color: "\x1b[35m" },
};
const RESET = "\x1b[0m";
const OMITTED = new Set(["level", "time", "msg", "pid", "hostname", "err", "name", "module", "component"]);

/** Rewrites each pino JSON line as `HH:MM:SS.mmm LEVEL module: message key=value …`. */
export function prettyStream(out: pino.DestinationStream, color = false): pino.DestinationStream {
  return {
    write(chunk: string) {
      for (const line of chunk.split("\n")) {
        if (line !== "") out.write(formatLine(line, color) + "\n");
      }
    },
  };
}

export function formatLine(line: string, color = false): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = LEVELS[entry.level as number] ?? { label: String(entry.level).padEnd(5), color: "" };
  const parts = [formatTime(entry.time), color ? `${level.color}${level.label}${RESET}` : level.label];
  const origin = [entry.name, entry.module, entry.component].filter((v) => typeof v === "string").join("/");
  if (origin !== "") parts.push(`${origin}:`);
  if (entry.msg !== undefined) parts.push(String(entry.msg));
  for (const [key, value] of Object.entries(entry)) {
    if (!OMITTED.has(key) && value !== undefined) parts.push(`${key}=${formatValue(value)}`);
  }
  let text = parts.join(" ");
  const err = entry.err as { type?: string; message?: string; stack?: string } | undefined;
  if (err !== undefined && err !== null) {
    const detail = typeof err.stack === "string" ? err.stack : `${err.type ?? "Error"}: ${err.message ?? formatValue(err)}`;
    text += "\n" + detail.split("\n").map((l) => `    ${l}`).join("\n");
  }
  return text;
}

function formatTime(time: unknown): string {
  const date = typeof time === "number" || typeof time === "string" ? new Date(time) : new Date();
  if (Number.isNaN(date.getTime())) return String(time);
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function formatValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return JSON.stringify(value) ?? String(value);
}

/**
 * Where a result is dropped (a lifecycle hook fired with nothing to answer, a background task): a
 * rejection is logged here instead of escaping as an unhandled rejection, which would end the process.
 */
export function contain(result: unknown, log: Logger, what: string, context: Record<string, unknown> = {}): void {
  if (isThenable(result)) {
    result.then(undefined, (err: unknown) => log.error({ ...context, err }, `${what} failed`));
  }
}
