/**
 * The seqs confirmed beyond the confirmed prefix, one bit each. Everything
 * below `prefix + 1` is confirmed by definition; bits exist only for the
 * window between the prefix and the highest confirmed seq, and whole words
 * are dropped as the prefix advances. A backlog of n entries costs at most
 * n/8 bytes (200k entries: 25 KB).
 */
export class SeqBitset {
  /** Seq of bit 0 of word 0 (word-aligned relative to the window). */
  #origin: number;
  /** The first seq not known confirmed. */
  #base: number;
  #words: Uint32Array;
  /** Bits set at or beyond #base. */
  #count = 0;

  /** `prefix`: every seq ≤ prefix counts as confirmed. */
  constructor(prefix = 0) {
    this.#origin = prefix + 1;
    this.#base = prefix + 1;
    this.#words = new Uint32Array(32);
  }

  /** Highest seq such that every seq ≤ it is confirmed. */
  get prefix(): number {
    return this.#base - 1;
  }

  /** Confirmed seqs beyond the prefix. */
  get count(): number {
    return this.#count;
  }

  /** Bytes held by the bit array. */
  get byteLength(): number {
    return this.#words.byteLength;
  }

  has(seq: number): boolean {
    if (seq < this.#base) return true;
    const i = seq - this.#origin;
    const w = i >>> 5;
    return w < this.#words.length && ((this.#words[w] ?? 0) & (1 << (i & 31))) !== 0;
  }

  /** Marks `seq` confirmed; returns whether it was new. Call advance() to move the prefix. */
  set(seq: number): boolean {
    if (this.has(seq)) return false;
    const i = seq - this.#origin;
    const w = i >>> 5;
    if (w >= this.#words.length) {
      let n = this.#words.length * 2;
      while (n <= w) n *= 2;
      const grown = new Uint32Array(n);
      grown.set(this.#words);
      this.#words = grown;
    }
    this.#words[w] = ((this.#words[w] ?? 0) | (1 << (i & 31))) >>> 0;
    this.#count += 1;
    return true;
  }

  /** Moves the prefix over every confirmed seq that directly follows it; returns the new prefix. */
  advance(): number {
    for (;;) {
      const i = this.#base - this.#origin;
      const w = i >>> 5;
      if (w >= this.#words.length) break;
      const word = this.#words[w] ?? 0;
      if ((i & 31) === 0 && word === 0xffffffff) {
        this.#base += 32;
        this.#count -= 32;
        continue;
      }
      if ((word & (1 << (i & 31))) === 0) break;
      this.#base += 1;
      this.#count -= 1;
    }
    const drop = (this.#base - this.#origin) >>> 5;
    if (drop > 0) {
      if (this.#count === 0 && this.#words.length > 64) this.#words = new Uint32Array(32);
      else {
        this.#words.copyWithin(0, drop);
        this.#words.fill(0, Math.max(0, this.#words.length - drop));
      }
      this.#origin += drop * 32;
    }
    return this.prefix;
  }
}
