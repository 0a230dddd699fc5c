import { spawnSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A named pipe that fping writes its per-packet lines into and that we drain on a timer.
 *
 * fping flushes after every line, so an ordinary child stdout wakes Node's event loop once
 * per probe; measured here that costs about 30 µs of CPU per line, as much as fping's own
 * probe. Draining a non-blocking FIFO ten times a second costs about 3 µs per line. Results
 * arrive up to one drain interval late, which no metric or outage measure notices.
 */
export class Fifo {
  readonly #fd: number;
  #closed = false;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /**
   * Opens both ends of the FIFO at `path` and unlinks it (open ends keep working). Returns
   * the reader and the write fd to hand to the child, or undefined if it cannot be opened.
   */
  static open(path: string): { fifo: Fifo; writeFd: number } | undefined {
    try {
      // Reader first and non-blocking, so that opening the writer does not wait.
      const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      const writeFd = openSync(path, constants.O_WRONLY);
      return { fifo: new Fifo(fd), writeFd };
    } catch {
      return undefined;
    } finally {
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    }
  }

  /**
   * Reads everything available now, `buf`-sized at most per read, until the pipe is empty
   * (EAGAIN: returns true) or every writer has closed (end of file: returns false).
   */
  drain(buf: Buffer, onChunk: (text: string) => void): boolean {
    if (this.#closed) return false;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.#fd, buf, 0, buf.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return true;
        throw err;
      }
      if (n === 0) return false;
      onChunk(buf.toString('latin1', 0, n));
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    closeSync(this.#fd);
  }
}

/**
 * Makes FIFOs in a private directory (removed at exit). Node has no mkfifo, and each run of
 * the mkfifo program blocks the event loop for a few ms, so they are made in batches: several
 * processes starting at once (a handover, a join) cost one run.
 */
export class FifoMaker {
  /** The private directory, or '' where none could be made (then every take() is undefined). */
  readonly dir: string;
  readonly #batch: number;
  #ready: string[] = [];
  #seq = 0;
  #broken = false;

  /** `onBroken` hears once why FIFOs cannot be made (read-only or full TMPDIR, no mkfifo). */
  constructor(dir?: string, batch = 16, onBroken?: (reason: string) => void) {
    this.#batch = batch;
    this.#onBroken = onBroken;
    let d = dir ?? '';
    if (dir === undefined) {
      try {
        d = mkdtempSync(join(tmpdir(), 'kube-node-ping-'));
      } catch (err) {
        // A read-only or full TMPDIR must not stop the agent: plain pipes work without one.
        this.#markBroken(`cannot make a directory in ${tmpdir()}: ${(err as Error).message}`);
      }
    }
    this.dir = d;
    if (d !== '') process.once('exit', () => rmSync(d, { recursive: true, force: true }));
  }

  readonly #onBroken: ((reason: string) => void) | undefined;

  #markBroken(reason: string): void {
    if (this.#broken) return;
    this.#broken = true;
    this.#onBroken?.(reason);
  }

  /** Makes at least `n` FIFOs ready now, in one mkfifo run. */
  prepare(n: number): void {
    const missing = n - this.#ready.length;
    if (missing <= 0 || this.#broken) return;
    const paths = Array.from({ length: Math.max(missing, this.#batch) }, () => join(this.dir, `fping-${this.#seq++}`));
    if (spawnSync('mkfifo', ['-m', '600', ...paths], { stdio: 'ignore' }).status !== 0) {
      // No mkfifo, or a read-only directory: callers fall back to plain pipes.
      this.#markBroken(`mkfifo failed in ${this.dir}`);
      return;
    }
    this.#ready.push(...paths);
  }

  /** An opened FIFO, or undefined where FIFOs cannot be made. */
  take(): { fifo: Fifo; writeFd: number } | undefined {
    if (this.#ready.length === 0) this.prepare(1);
    const path = this.#ready.shift();
    return path === undefined ? undefined : Fifo.open(path);
  }
}

/** Splits chunks into lines, carrying a partial last line to the next chunk. */
export class LineSplitter {
  #rest = '';

  push(chunk: string, onLine: (line: string) => void): void {
    let from = 0;
    let nl = chunk.indexOf('\n');
    if (nl < 0) {
      this.#rest += chunk;
      return;
    }
    onLine(this.#rest + chunk.slice(0, nl));
    this.#rest = '';
    for (;;) {
      from = nl + 1;
      nl = chunk.indexOf('\n', from);
      if (nl < 0) break;
      onLine(chunk.slice(from, nl));
    }
    this.#rest = chunk.slice(from);
  }
}
