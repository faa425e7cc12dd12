// Unit tests for the power-loss file system model itself: if the model is
// wrong, every crash test built on it proves nothing. Each test states one
// POSIX durability rule and checks the model keeps it, strictly.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { seededRng } from "../../src/lib/index.js";
import { PowerCut, PowerLossFs, isPowerCut } from "./power-loss-fs.js";
import type { CrashOptions } from "./power-loss-fs.js";

const b = (s: string): Buffer => Buffer.from(s, "utf8");
const text = async (fs: PowerLossFs, path: string): Promise<string | undefined> => {
  const d = await fs.readFile(path);
  return d === undefined ? undefined : Buffer.from(d).toString("utf8");
};

/** A file system with /d created and made durable, the usual starting point. */
async function withDir(): Promise<PowerLossFs> {
  const fs = new PowerLossFs();
  await fs.mkdirDurable("/d");
  return fs;
}

/** A file /d/f with `content` synced and its directory entry durable. */
async function durableFile(content: string): Promise<PowerLossFs> {
  const fs = await withDir();
  const f = await fs.openFile("/d/f");
  await f.write(b(content), 0);
  await f.sync();
  await f.close();
  await fs.fsyncDir("/d");
  return fs;
}

describe("PowerLossFs: what survives a power cut", () => {
  it("a running system sees its writes; unsynced data is lost on crash", async () => {
    const fs = await durableFile("abc");
    const f = await fs.openFile("/d/f");
    await f.write(b("def"), 3);
    expect(await text(fs, "/d/f")).toBe("abcdef");
    expect(await f.size()).toBe(6);
    const after = fs.crash();
    expect(await text(after, "/d/f")).toBe("abc");
  });

  it("synced data survives", async () => {
    const fs = await durableFile("abc");
    const f = await fs.openFile("/d/f");
    await f.write(b("def"), 3);
    await f.sync();
    expect(await text(fs.crash(), "/d/f")).toBe("abcdef");
  });

  it("a synced file whose directory entry was never fsynced is lost", async () => {
    const fs = await withDir();
    await fs.writeFileSynced("/d/new", b("data"));
    expect(await fs.exists("/d/new")).toBe(true);
    expect(await fs.crash().exists("/d/new")).toBe(false);
  });

  it("fsyncDir makes the entry durable, pointing at the inode's durable content", async () => {
    const fs = await withDir();
    const f = await fs.openFile("/d/new");
    await f.write(b("unsynced"), 0);
    await fs.fsyncDir("/d");
    const after = fs.crash();
    expect(await after.exists("/d/new")).toBe(true);
    expect(await text(after, "/d/new")).toBe("");
  });

  it("an unsynced rename is lost: the old name keeps the old inode", async () => {
    const fs = await durableFile("old");
    await fs.writeFileSynced("/d/tmp", b("new"));
    await fs.fsyncDir("/d"); // tmp is durable
    await fs.writeFileSynced("/d/tmp", b("newer")); // same inode, O_TRUNC
    await fs.rename("/d/tmp", "/d/f");
    expect(await text(fs, "/d/f")).toBe("newer");
    expect(await fs.exists("/d/tmp")).toBe(false);
    const after = fs.crash();
    expect(await text(after, "/d/f")).toBe("old");
    expect(await text(after, "/d/tmp")).toBe("newer");
  });

  it("a synced rename is kept (temp → fsync → rename → fsync(dir))", async () => {
    const fs = await durableFile("old");
    await fs.writeFileSynced("/d/tmp", b("new"));
    await fs.rename("/d/tmp", "/d/f");
    await fs.fsyncDir("/d");
    const after = fs.crash();
    expect(await text(after, "/d/f")).toBe("new");
    expect(await after.exists("/d/tmp")).toBe(false);
  });

  it("a rename made durable before its source was fsynced points at empty content", async () => {
    const fs = await durableFile("old");
    const t = await fs.openFile("/d/tmp");
    await t.write(b("never synced"), 0);
    await fs.rename("/d/tmp", "/d/f");
    await fs.fsyncDir("/d");
    expect(await text(fs.crash(), "/d/f")).toBe("");
  });

  it("an unsynced unlink is lost; a synced one is kept", async () => {
    const fs = await durableFile("x");
    await fs.unlink("/d/f");
    expect(await fs.exists("/d/f")).toBe(false);
    expect(await text(fs.crash(), "/d/f")).toBe("x");

    const fs2 = await durableFile("x");
    await fs2.unlink("/d/f");
    await fs2.fsyncDir("/d");
    expect(await fs2.crash().exists("/d/f")).toBe(false);
  });

  it("an open handle keeps working after unlink (orphan inode), and the orphan is gone after a crash", async () => {
    const fs = await durableFile("x");
    const f = await fs.openFile("/d/f");
    await fs.unlink("/d/f");
    await fs.fsyncDir("/d");
    await f.write(b("yz"), 1);
    await f.sync();
    expect(Buffer.from(await f.read(0, 10)).toString()).toBe("xyz");
    expect(fs.crash().listDir("/d")).toEqual({ volatile: [], durable: [] });
  });

  it("an unsynced truncate is lost; a synced one is kept", async () => {
    const fs = await durableFile("abcdef");
    const f = await fs.openFile("/d/f");
    await f.truncate(2);
    expect(await text(fs, "/d/f")).toBe("ab");
    expect(await text(fs.crash(), "/d/f")).toBe("abcdef");

    const fs2 = await durableFile("abcdef");
    const g = await fs2.openFile("/d/f");
    await g.truncate(2);
    await g.sync();
    expect(await text(fs2.crash(), "/d/f")).toBe("ab");
  });

  it("a directory created without fsync of its parent is lost with everything in it", async () => {
    const fs = new PowerLossFs();
    await fs.mkdirp("/a/b");
    await fs.writeFileSynced("/a/b/f", b("data"));
    await fs.fsyncDir("/a/b"); // f is durable in b, but b is not durable in a, nor a in /
    expect(await fs.crash().exists("/a")).toBe(false);

    const fs2 = new PowerLossFs();
    await fs2.mkdirDurable("/a/b");
    await fs2.writeFileSynced("/a/b/f", b("data"));
    await fs2.fsyncDir("/a/b");
    expect(await text(fs2.crash(), "/a/b/f")).toBe("data");
  });

  it("writes past the end leave a zero-filled hole, reads past the end are short", async () => {
    const fs = await withDir();
    const f = await fs.openFile("/d/f");
    await f.write(b("z"), 3);
    expect([...(await f.read(0, 10))]).toEqual([0, 0, 0, 0x7a]);
    expect((await f.read(10, 5)).byteLength).toBe(0);
  });

  it("writeFileSynced creates or overwrites and syncs the content (not the entry)", async () => {
    const fs = await durableFile("long old content");
    await fs.writeFileSynced("/d/f", b("new"));
    expect(await text(fs, "/d/f")).toBe("new");
    expect(await text(fs.crash(), "/d/f")).toBe("new");
  });

  it("errors like the real thing: ENOENT, EISDIR, ENOTDIR, EBADF", async () => {
    const fs = await durableFile("x");
    expect(await fs.readFile("/d/missing")).toBeUndefined();
    await expect(fs.openFile("/nope/f")).rejects.toMatchObject({ code: "ENOENT" });
    await expect(fs.rename("/d/missing", "/d/g")).rejects.toMatchObject({ code: "ENOENT" });
    await expect(fs.unlink("/d/missing")).rejects.toMatchObject({ code: "ENOENT" });
    await expect(fs.readFile("/d")).rejects.toMatchObject({ code: "EISDIR" });
    await expect(fs.mkdirp("/d/f/sub")).rejects.toMatchObject({ code: "ENOTDIR" });
    await expect(fs.fsyncDir("/d/f")).rejects.toMatchObject({ code: "ENOTDIR" });
    const f = await fs.openFile("/d/f");
    await f.close();
    await expect(f.read(0, 1)).rejects.toMatchObject({ code: "EBADF" });
  });

  it("the crashed image is a new, independent instance and the old one is powered off", async () => {
    const fs = await durableFile("x");
    const after = fs.crash();
    expect(fs.poweredOff).toBe(true);
    await expect(fs.readFile("/d/f")).rejects.toBeInstanceOf(PowerCut);
    const f = await after.openFile("/d/f");
    await f.write(b("y"), 1);
    await f.sync();
    expect(await text(after.crash(), "/d/f")).toBe("xy");
  });
});

describe("PowerLossFs: process death is not power loss", () => {
  it("restart() keeps the kernel's volatile state; a later crash() still loses what was never durable", async () => {
    const fs = await durableFile("abc");
    const f = await fs.openFile("/d/f");
    await f.write(b("def"), 3);
    await fs.writeFileSynced("/d/tmp", b("t"));
    await fs.rename("/d/tmp", "/d/g");
    fs.cutPowerAt(1);
    await expect(f.sync()).rejects.toBeInstanceOf(PowerCut);
    const next = fs.restart();
    await expect(f.read(0, 1)).rejects.toBeInstanceOf(PowerCut); // the dead process's handle
    expect(() => fs.crash()).toThrow(/restart/);
    expect(await text(next, "/d/f")).toBe("abcdef");
    expect(await text(next, "/d/g")).toBe("t");
    const after = next.crash();
    expect(await text(after, "/d/f")).toBe("abc");
    expect(await after.exists("/d/g")).toBe(false);
  });
});

describe("PowerLossFs: fault injection", () => {
  it("counts mutating operations only", async () => {
    const fs = await withDir();
    const base = fs.opCount;
    await fs.writeFileSynced("/d/t", b("1")); // create, write, sync
    expect(fs.opCount - base).toBe(3);
    await fs.rename("/d/t", "/d/s");
    await fs.fsyncDir("/d");
    await fs.readFile("/d/s");
    await fs.exists("/d/s");
    const f = await fs.openFile("/d/s"); // exists: not a mutation
    await f.read(0, 1);
    await f.size();
    await f.close();
    expect(fs.opCount - base).toBe(5);
  });

  it("failAfter(n) fails the n-th mutating operation once, with no effect (default EIO)", async () => {
    const fs = await durableFile("abc");
    const f = await fs.openFile("/d/f");
    fs.failAfter(2);
    await f.write(b("d"), 3); // 1
    await expect(f.sync()).rejects.toMatchObject({ code: "EIO", syscall: "fsync" }); // 2
    expect(fs.inspect("/d/f")?.durable.toString()).toBe("abc");
    await f.sync(); // 3: the failure fired once
    expect(await text(fs.crash(), "/d/f")).toBe("abcd");
  });

  it("failAfter with ENOSPC and persistent fails every later mutating operation", async () => {
    const fs = await withDir();
    fs.failAfter(1, "ENOSPC", { persistent: true });
    await expect(fs.writeFileSynced("/d/x", b("1"))).rejects.toMatchObject({ code: "ENOSPC", errno: -28 });
    await expect(fs.mkdirp("/d/e")).rejects.toMatchObject({ code: "ENOSPC" });
    fs.disarm();
    await fs.mkdirp("/d/e");
  });

  it("a failed write lands a random prefix of itself when the instance has an RNG", async () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      const fs = new PowerLossFs({ rng: seededRng(seed) });
      await fs.mkdirDurable("/d");
      const f = await fs.openFile("/d/f");
      fs.failAfter(1, "ENOSPC");
      await expect(f.write(b("0123456789"), 0)).rejects.toMatchObject({ code: "ENOSPC" });
      const got = fs.inspect("/d/f")?.volatile.toString() ?? "";
      expect("0123456789".startsWith(got)).toBe(true);
      seen.add(got.length);
    }
    expect(seen.size).toBeGreaterThan(3);
  });

  it("cutPowerAt(k): the k-th mutating operation throws PowerCut, and so does everything after", async () => {
    const fs = await withDir();
    fs.cutPowerAt(3);
    const err = await fs.writeFileSynced("/d/a", b("1")).then(() => undefined, (e: unknown) => e); // create(1), write(2), sync(3)
    expect(err).toBeInstanceOf(PowerCut);
    expect(err).toMatchObject({ code: "EPOWERCUT", op: "fsync", opIndex: fs.opCount });
    expect(fs.poweredOff).toBe(true);
    await expect(fs.exists("/d/a")).rejects.toBeInstanceOf(PowerCut);
    await expect(fs.readFile("/d/a")).rejects.toBeInstanceOf(PowerCut);
    // The sync never happened, and the entry was never fsynced.
    expect(await fs.crash().exists("/d/a")).toBe(false);
  });

  it("isPowerCut sees through error causes (the WAL wraps I/O errors)", () => {
    expect(isPowerCut(new Error("wrapped", { cause: new PowerCut("write", 7) }))).toBe(true);
    expect(isPowerCut(new Error("EIO"))).toBe(false);
  });

  it("the same seed replays the same crash", async () => {
    const image = async (seed: number): Promise<string> => {
      const fs = await durableFile("committed|");
      const f = await fs.openFile("/d/f");
      await f.write(b("x".repeat(3000)), 10);
      await fs.writeFileSynced("/d/g", b("g"));
      const after = fs.crash({ rng: seededRng(seed), metadata: "ordered" });
      return JSON.stringify([await text(after, "/d/f"), await after.exists("/d/g"), after.crashReport]);
    };
    expect(await image(42)).toBe(await image(42));
  });
});

describe("PowerLossFs: what real disks may also leave (seeded)", () => {
  it("without an rng, crash() is strict; tornWrites and metadata modes need and use it", async () => {
    const fs = await durableFile("abc");
    const f = await fs.openFile("/d/f");
    await f.write(b("def"), 3);
    expect(() => fs.crash({ metadata: "ordered" })).toThrow(/needs an rng/);
    expect(await text(fs.crash({ tornWrites: true }), "/d/f")).toBe("abc");
  });

  it("torn unsynced appends: every outcome keeps the durable bytes and adds a prefix of the unsynced bytes or zeros", async () => {
    const outcomes = new Set<string>();
    for (let seed = 1; seed <= 300; seed++) {
      const fs = await durableFile("D".repeat(700));
      const f = await fs.openFile("/d/f");
      const extra = Buffer.alloc(1500, 0x55);
      await f.write(extra, 700);
      const after = fs.crash({ rng: seededRng(seed) });
      const got = Buffer.from((await after.readFile("/d/f")) ?? new Uint8Array());
      expect(got.subarray(0, 700).toString()).toBe("D".repeat(700));
      expect(got.length).toBeLessThanOrEqual(2200);
      expect(got.subarray(700).every((byte) => byte === 0 || byte === 0x55)).toBe(true);
      outcomes.add(after.crashReport?.files[0]?.outcome ?? "none");
    }
    expect([...outcomes].sort()).toEqual(["all", "durable", "prefix", "sectors", "zeros"]);
  });

  it("ordered metadata keeps a prefix of the un-fsynced directory operations", async () => {
    const states = new Set<string>();
    for (let seed = 1; seed <= 100; seed++) {
      const fs = await withDir();
      await fs.writeFileSynced("/d/1", b("1"));
      await fs.writeFileSynced("/d/2", b("2"));
      await fs.writeFileSynced("/d/3", b("3"));
      const after = fs.crash({ rng: seededRng(seed), metadata: "ordered" });
      const names = after.listDir("/d")?.durable.join("") ?? "";
      expect(["", "1", "12", "123"]).toContain(names);
      states.add(names);
    }
    expect(states.size).toBe(4);
  });

  it("a rename is atomic in every metadata mode: one name or the other, never neither, never both", async () => {
    for (const metadata of ["strict", "ordered", "any"] as const) {
      for (let seed = 1; seed <= 60; seed++) {
        const fs = await durableFile("old");
        await fs.writeFileSynced("/d/tmp", b("new"));
        await fs.fsyncDir("/d");
        await fs.rename("/d/tmp", "/d/f");
        const opts: CrashOptions = metadata === "strict" ? {} : { rng: seededRng(seed), metadata };
        const after = fs.crash(opts);
        const names = after.listDir("/d")?.durable ?? [];
        expect(names.includes("tmp") ? ["f", "tmp"] : ["f"]).toEqual(names);
        expect(["old", "new"]).toContain(await text(after, "/d/f"));
        if (names.includes("tmp")) expect(await text(after, "/d/f")).toBe("old");
      }
    }
  });

  it("property: whatever the interleaving of appends, syncs and crashes, synced bytes survive and nothing else appears", async () => {
    type Step = { kind: "write"; len: number } | { kind: "sync" } | { kind: "crash"; seed: number; torn: boolean };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.record({ kind: fc.constant("write" as const), len: fc.integer({ min: 0, max: 1200 }) }),
      fc.record({ kind: fc.constant("sync" as const) }),
      fc.record({ kind: fc.constant("crash" as const), seed: fc.integer(), torn: fc.boolean() }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 25 }), async (steps) => {
        let fs = await durableFile("");
        let f = await fs.openFile("/d/f");
        let volatile = Buffer.alloc(0);
        let durable = Buffer.alloc(0);
        let fill = 1;
        for (const s of steps) {
          if (s.kind === "write") {
            const chunk = Buffer.alloc(s.len, fill++ % 255 || 1);
            await f.write(chunk, volatile.length);
            volatile = Buffer.concat([volatile, chunk]);
          } else if (s.kind === "sync") {
            await f.sync();
            durable = Buffer.from(volatile);
          } else {
            fs = fs.crash({ rng: seededRng(s.seed), tornWrites: s.torn });
            const got = Buffer.from((await fs.readFile("/d/f")) ?? new Uint8Array());
            expect(got.subarray(0, durable.length).equals(durable)).toBe(true);
            expect(got.length).toBeLessThanOrEqual(volatile.length);
            expect(got.every((byte, i) => i < durable.length || byte === 0 || byte === volatile[i])).toBe(true);
            if (!s.torn) expect(got.equals(durable)).toBe(true);
            // The survivor is the new truth.
            volatile = got;
            durable = Buffer.from(got);
            f = await fs.openFile("/d/f");
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("PowerLossFs: read-only handles (the WAL reader's openRead)", () => {
  it("reads what reads see now, rejects a missing file with ENOENT, and names the file itself across a rename", async () => {
    const fs = await durableFile("hello");
    await expect(fs.openRead("/d/none")).rejects.toMatchObject({ code: "ENOENT" });
    const r = await fs.openRead("/d/f");
    const buf = Buffer.alloc(8);
    expect(await r.readInto(buf, 1, 3, 1)).toBe(3);
    expect(buf.subarray(1, 4).toString()).toBe("ell");
    expect(await r.readInto(buf, 0, 8, 5)).toBe(0);
    const w = await fs.openFile("/d/f");
    await w.write(b("!"), 5); // not synced: still visible to reads
    expect(await r.size()).toBe(6);
    const id = await r.identity();
    await fs.rename("/d/f", "/d/g");
    expect(await (await fs.openRead("/d/g")).identity()).toBe(id);
    await (await fs.openFile("/d/f")).close();
    expect(await (await fs.openRead("/d/f")).identity()).not.toBe(id);
    expect(fs.opCount).toBeGreaterThan(0);
  });
});
