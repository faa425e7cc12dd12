/**
 * Adversarial review (issue 11, relay half): a configured peer pushing a huge
 * number of tiny segments. The store's ceiling counts the segments' byte
 * lengths only, but every segment is its own file: a 1-byte segment takes a
 * whole filesystem block (4 KiB here) and an inode. So `ceiling_bytes` bounds
 * nothing real against tiny segments — 1 GiB of ceiling admits ~10^9 files.
 */
import { lstat, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { openSegmentStore } from "../../../src/edge/storage/index.js";

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

it("attack: a peer pushing many 1-byte segments — the disk the segment store occupies stays within ceiling_bytes", async () => {
  const root = await mkdtemp(join(tmpdir(), "rev2-tiny-"));
  dirs.push(root);
  const dir = join(root, "segments");
  const ceiling = 64 * 1024;
  const store = await openSegmentStore({ dir, ceilingBytes: ceiling });
  let accepted = 0;
  for (let i = 0; i < 200; i++) {
    const ok = await store.put(Buffer.from([i & 0xff, i >> 8]), "data").then(() => true, () => false);
    if (!ok) break;
    accepted++;
  }
  let onDisk = 0;
  for (const name of await readdir(dir)) {
    if (name === "evictions.log") continue;
    onDisk += (await lstat(join(dir, name))).blocks * 512;
  }
  expect(accepted).toBeGreaterThan(0);
  // On main: 200 two-byte segments accepted, 819200 bytes of blocks under a 65536-byte ceiling.
  expect(onDisk).toBeLessThanOrEqual(ceiling);
});
