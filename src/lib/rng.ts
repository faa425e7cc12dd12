/** A random number in [0, 1). Seeded, so a failing run replays exactly. */
export type Rng = () => number;

/**
 * mulberry32: a small, fast, seedable PRNG (32-bit state). Not for secrets:
 * it drives crash harnesses and generated workloads, whose runs must replay
 * from a printed seed.
 */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
