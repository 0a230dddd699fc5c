/**
 * Loaded into the agent by bench/run.ts (node --import): a 5 ms timer that writes every
 * event-loop stall of 10 ms or more to $KNP_STALL_FILE as "<end, ms since epoch> <stall ms>".
 * The stall is how much later than due the timer ran, so it is how long the loop, which also
 * drains fping's output, was held. Plain JavaScript so that loading it does not bring in
 * Node's TypeScript stripping, which would inflate the agent's memory.
 */
import { appendFileSync } from 'node:fs';

const file = process.env.KNP_STALL_FILE;
const TICK_MS = 5;
const REPORT_MS = 10;
if (file) {
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    const stall = now - last - TICK_MS;
    last = now;
    if (stall >= REPORT_MS) appendFileSync(file, `${(performance.timeOrigin + now).toFixed(1)} ${stall.toFixed(1)}\n`);
  }, TICK_MS).unref();
}
