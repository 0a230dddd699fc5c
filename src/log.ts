/**
 * Structured JSON logs, one object per line on stderr. Levels filter at the call site so a
 * disabled debug line costs one comparison.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
export const LOG_LEVELS = Object.keys(RANK) as LogLevel[];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
  child(bindings: LogFields): Logger;
}

export interface LoggerOptions {
  level: LogLevel;
  write?: (line: string) => void;
  bindings?: LogFields;
  now?: () => Date;
}

export function createLogger(opts: LoggerOptions): Logger {
  const min = RANK[opts.level];
  const write = opts.write ?? ((line: string) => process.stderr.write(line));
  const now = opts.now ?? (() => new Date());
  const bindings = opts.bindings ?? {};
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const record: LogFields = { time: now().toISOString(), level, msg, ...bindings, ...fields };
    write(JSON.stringify(record, errorReplacer) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    enabled: (level) => RANK[level] >= min,
    child: (more) => createLogger({ ...opts, bindings: { ...bindings, ...more } }),
  };
}

function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

/**
 * Lets one message through per interval and counts what it held back, so that a collector
 * that is down for an hour writes a handful of lines, not one per export.
 */
export class RateLimitedLog {
  #last = -Infinity;
  #suppressed = 0;
  readonly #intervalMs: number;
  readonly #now: () => number;

  constructor(intervalMs: number, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** Calls `emit` with the number of messages suppressed since the last one, or counts this one. */
  maybe(emit: (suppressed: number) => void): void {
    const t = this.#now();
    if (t - this.#last < this.#intervalMs) {
      this.#suppressed++;
      return;
    }
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    this.#last = t;
    emit(suppressed);
  }

  /** The next message goes through at once (a new condition, not a repeat of the last). */
  reset(): void {
    this.#last = -Infinity;
    this.#suppressed = 0;
  }
}
