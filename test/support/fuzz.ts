/**
 * Settings shared by the property-based fuzz tests (fast-check). The seed is fixed so that a
 * failure in CI replays exactly; KNP_FUZZ_SEED and KNP_FUZZ_RUNS explore further by hand, e.g.
 * `KNP_FUZZ_SEED=$RANDOM KNP_FUZZ_RUNS=100000 node --test 'src/**\/*.fuzz.test.ts'`.
 */
export const FUZZ = {
  seed: Number(process.env['KNP_FUZZ_SEED'] ?? 20261201),
  numRuns: Number(process.env['KNP_FUZZ_RUNS'] ?? 1000),
};
