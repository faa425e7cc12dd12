import { posix } from "node:path";
import type { Rng } from "../../src/lib/index.js";
import type { WalFile, WalFs, WalReadFile } from "../../src/telemetry/index.js";

/**
 * An in-memory file system that models POSIX durability strictly, for crash
 * tests of the WAL (seed 001 §3.5–§3.6):
 *
 *   - every file (inode) has volatile content (what reads see) and durable
 *     content (what survives a power cut); `WalFile.sync()` makes the current
 *     content durable, `writeFileSynced` writes then syncs;
 *   - directory entries (create, mkdir, rename, unlink) are volatile until
 *     `fsyncDir` of their directory makes all of that directory's entries
 *     durable. A directory whose own entry in its parent was never made durable
 *     is lost with everything in it;
 *   - `crash()` returns a NEW instance holding only what a power cut at this
 *     instant leaves, and cuts power to this one. With a seeded RNG it can also
 *     model what real disks do: unsynced writes that partially survive (a prefix
 *     of the unsynced bytes, the file extended with zeros, a sector mix, all of
 *     it) and journaled metadata (a prefix of the un-fsynced directory ops);
 *   - fault injection: `failAfter(n, errno)` fails the n-th mutating operation
 *     from now (EIO, ENOSPC); `cutPowerAt(k)` makes the k-th mutating operation
 *     from now throw `PowerCut`, and every operation after it too, so a harness
 *     can crash at operation k and then call `crash()` (power loss) or
 *     `restart()` (only the process died: the kernel's volatile state lives on).
 *
 * Every operation resolves through microtasks only, so a workload on this file
 * system is deterministic: the same seed, the same interleaving.
 *
 * Mutating operations (counted by `opCount`): openFile when it creates, write,
 * sync, truncate, writeFileSynced (three: create-or-truncate, write, sync),
 * rename, unlink, fsyncDir, mkdirp (one per directory created). Reads (openRead too), exists, fileSize, list,
 * size and close are not counted, but throw once power is cut.
 */

/** Thrown by the operation at which power was cut, and by every operation after it. */
export class PowerCut extends Error {
  readonly code = "EPOWERCUT";
  constructor(
    readonly op: string,
    readonly opIndex: number,
  ) {
    super(opIndex > 0 ? `power cut at mutating operation #${opIndex} (${op})` : `power is off (${op})`);
    this.name = "PowerCut";
  }
}

export function isPowerCut(e: unknown): boolean {
  for (let c: unknown = e; c instanceof Error; c = c.cause) if (c instanceof PowerCut) return true;
  return false;
}

export type InjectedErrno = "EIO" | "ENOSPC";

/**
 * What survives of directory operations that no fsyncDir covered:
 *   - "strict": nothing (only fsynced entries; the brief's model);
 *   - "ordered": a random prefix of them in issue order (a metadata journal);
 *   - "any": a random subset (no ordering between un-fsynced operations at all).
 */
export type MetadataMode = "strict" | "ordered" | "any";

export interface CrashOptions {
  /** Seeded RNG for the choices below; without it the crash is strict and deterministic. */
  rng?: Rng;
  /** Unsynced file content may partially survive (default: true when `rng` is given). */
  tornWrites?: boolean;
  /** Default "strict". Anything else needs `rng`. */
  metadata?: MetadataMode;
}

/** What a crash did, for failure messages. */
export interface CrashReport {
  metadata: MetadataMode;
  /** Un-fsynced directory operations at the crash, and how many of them survived. */
  pendingDirOps: string[];
  survivedDirOps: string[];
  /** Per reachable file whose volatile content differed from its durable content. */
  files: { path: string; outcome: TornOutcome; durableBytes: number; volatileBytes: number; survivedBytes: number }[];
}

export type TornOutcome = "durable" | "all" | "prefix" | "zeros" | "sectors";

export interface PowerLossFsOptions {
  /** Used when an injected failure or power cut interrupts a write: a random prefix of it lands. */
  rng?: Rng;
}

interface FileNode {
  kind: "file";
  id: number;
  data: Buffer;
  durable: Buffer;
}

interface DirNode {
  kind: "dir";
  id: number;
  entries: Map<string, number>;
  durable: Map<string, number>;
}

type Node = FileNode | DirNode;

/** One entry change in one directory; `target` undefined removes the name. */
interface DirChange {
  dir: number;
  name: string;
  target: number | undefined;
}

/** One directory operation (a rename changes two entries atomically). */
interface DirOp {
  label: string;
  changes: DirChange[];
}

const ROOT = 0;
const SECTOR = 512;
const ERRNO: Readonly<Record<string, number>> = { ENOENT: -2, EIO: -5, EBADF: -9, EEXIST: -17, ENOTDIR: -20, EISDIR: -21, ENOSPC: -28, ENOTEMPTY: -39 };

function fsError(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: simulated ${code === "EIO" || code === "ENOSPC" ? "fault" : "error"}, ${syscall} '${path}'`);
  e.code = code;
  e.errno = ERRNO[code] ?? -1;
  e.syscall = syscall;
  e.path = path;
  return e;
}

function normalize(path: string): string {
  return posix.resolve("/", path);
}

function components(path: string): string[] {
  return normalize(path).split("/").filter((c) => c !== "");
}

export class PowerLossFs implements WalFs {
  #nodes = new Map<number, Node>();
  #nextId = 1;
  #pending: DirOp[] = [];
  #ops = 0;
  #cutAt: number | undefined;
  #fail: { at: number; errno: InjectedErrno; persistent: boolean; fired: boolean } | undefined;
  #off = false;
  #retired = false;
  readonly #rng: Rng | undefined;
  /** Set on instances made by `crash()`. */
  crashReport: CrashReport | undefined;

  constructor(opts: PowerLossFsOptions = {}) {
    this.#rng = opts.rng;
    this.#nodes.set(ROOT, { kind: "dir", id: ROOT, entries: new Map(), durable: new Map() });
  }

  // ---------------------------------------------------------------- harness

  /** Mutating operations attempted so far (including failed and cut ones). */
  get opCount(): number {
    return this.#ops;
  }

  get poweredOff(): boolean {
    return this.#off;
  }

  /** The k-th mutating operation from now (1-based) throws PowerCut, and every operation after it. */
  cutPowerAt(k: number): void {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`cutPowerAt(${k}): k must be an integer ≥ 1`);
    this.#cutAt = this.#ops + k;
  }

  /** Cuts power now: every later operation throws PowerCut. */
  cutPower(): void {
    this.#off = true;
  }

  /**
   * The n-th mutating operation from now (1-based) fails with `errno` and has no
   * effect (a write may land a random prefix when the instance has an RNG).
   * `persistent`: every later mutating operation fails too.
   */
  failAfter(n: number, errno: InjectedErrno = "EIO", opts: { persistent?: boolean } = {}): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`failAfter(${n}): n must be an integer ≥ 1`);
    this.#fail = { at: this.#ops + n, errno, persistent: opts.persistent ?? false, fired: false };
  }

  /** Clears a pending power cut and failure injection (not a cut that already happened). */
  disarm(): void {
    this.#cutAt = undefined;
    this.#fail = undefined;
  }

  /** Test setup: mkdir -p and fsync every directory on the way, so the path itself survives crashes. */
  async mkdirDurable(dir: string): Promise<void> {
    await this.mkdirp(dir);
    const parts = components(dir);
    for (let i = 0; i <= parts.length; i++) await this.fsyncDir("/" + parts.slice(0, i).join("/"));
  }

  /** Volatile and durable content of a file (undefined when the path is not a file). */
  inspect(path: string): { volatile: Uint8Array; durable: Uint8Array } | undefined {
    const node = this.#lookup(path);
    return node?.kind === "file" ? { volatile: Buffer.from(node.data), durable: Buffer.from(node.durable) } : undefined;
  }

  /** Names in a directory: what a running system sees, and what is durable. */
  listDir(path: string): { volatile: string[]; durable: string[] } | undefined {
    const node = this.#lookup(path);
    return node?.kind === "dir" ? { volatile: [...node.entries.keys()].sort(), durable: [...node.durable.keys()].sort() } : undefined;
  }

  /**
   * The state a power cut at this instant leaves, as a new powered-on instance.
   * This instance is powered off: every later operation on it throws PowerCut.
   */
  crash(opts: CrashOptions = {}): PowerLossFs {
    if (this.#retired) throw new Error("PowerLossFs: this instance was handed to restart(); crash the new one");
    const rng = opts.rng;
    const metadata = opts.metadata ?? "strict";
    if (metadata !== "strict" && !rng) throw new Error(`crash({ metadata: "${metadata}" }) needs an rng`);
    const torn = (opts.tornWrites ?? rng !== undefined) && rng !== undefined;
    this.#off = true;

    // 1. Directory entries: the durable maps, plus whatever un-fsynced operations survive.
    const dirMaps = new Map<number, Map<string, number>>();
    for (const n of this.#nodes.values()) if (n.kind === "dir") dirMaps.set(n.id, new Map(n.durable));
    let surviving: DirOp[] = [];
    if (metadata === "ordered" && rng) surviving = this.#pending.slice(0, Math.floor(rng() * (this.#pending.length + 1)));
    if (metadata === "any" && rng) surviving = this.#pending.filter(() => rng() < 0.5);
    for (const op of surviving) {
      for (const c of op.changes) {
        const m = dirMaps.get(c.dir);
        if (!m) continue;
        if (c.target === undefined) m.delete(c.name);
        else m.set(c.name, c.target);
      }
    }

    // 2. Walk from the root through the surviving entries; only reachable inodes exist after the crash.
    const next = new PowerLossFs(this.#rng ? { rng: this.#rng } : {});
    next.#nextId = this.#nextId;
    next.#nodes.clear();
    const report: CrashReport = { metadata, pendingDirOps: this.#pending.map((o) => o.label), survivedDirOps: surviving.map((o) => o.label), files: [] };
    const visit = (id: number, path: string): void => {
      if (next.#nodes.has(id)) return;
      const n = this.#nodes.get(id);
      if (!n) return;
      if (n.kind === "file") {
        const { data, outcome } = torn && rng ? tornContent(n.durable, n.data, rng) : { data: Buffer.from(n.durable), outcome: "durable" as const };
        if (!n.data.equals(n.durable)) report.files.push({ path, outcome, durableBytes: n.durable.length, volatileBytes: n.data.length, survivedBytes: data.length });
        next.#nodes.set(id, { kind: "file", id, data, durable: Buffer.from(data) });
        return;
      }
      const entries = dirMaps.get(id) ?? new Map<string, number>();
      const dir: DirNode = { kind: "dir", id, entries: new Map(), durable: new Map() };
      next.#nodes.set(id, dir);
      for (const [name, child] of entries) {
        if (!this.#nodes.has(child)) continue;
        visit(child, posix.join(path, name));
        dir.entries.set(name, child);
        dir.durable.set(name, child);
      }
    };
    visit(ROOT, "/");
    next.crashReport = report;
    return next;
  }

  /**
   * The process died (SIGKILL at the cut, or anywhere), the machine did not:
   * a new instance for the next process sees everything the kernel holds,
   * volatile content and un-fsynced directory entries included, and a later
   * `crash()` of it still loses whatever was never made durable. This instance
   * (the dead process's handles) is powered off.
   */
  restart(): PowerLossFs {
    if (this.#retired) throw new Error("PowerLossFs: restart() twice on the same instance");
    this.#off = true;
    this.#retired = true;
    const next = new PowerLossFs(this.#rng ? { rng: this.#rng } : {});
    next.#nodes = this.#nodes;
    next.#nextId = this.#nextId;
    next.#pending = this.#pending;
    return next;
  }

  // ---------------------------------------------------------------- WalFs

  async openFile(path: string): Promise<WalFile> {
    await Promise.resolve();
    this.#alive("open");
    const existing = this.#lookup(path);
    if (existing?.kind === "dir") throw fsError("EISDIR", "open", path);
    if (existing) return this.#handle(existing, path);
    const parent = this.#parentDir(path, "open");
    this.#gate("create", path);
    const node = this.#newFile();
    this.#link(parent, posix.basename(normalize(path)), node.id, `create ${normalize(path)}`);
    return this.#handle(node, path);
  }

  async openRead(path: string): Promise<WalReadFile> {
    await Promise.resolve();
    this.#alive("open");
    const node = this.#lookup(path);
    if (!node) throw fsError("ENOENT", "open", path);
    if (node.kind === "dir") throw fsError("EISDIR", "open", path);
    return {
      readInto: async (buf, offset, length, position) => {
        await Promise.resolve();
        this.#alive("read");
        const bytes = node.data.subarray(Math.min(position, node.data.length), Math.min(position + length, node.data.length));
        buf.set(bytes, offset);
        return bytes.length;
      },
      size: () => Promise.resolve(node.data.length),
      identity: () => Promise.resolve(String(node.id)),
      close: () => Promise.resolve(),
    };
  }

  async readFile(path: string): Promise<Uint8Array | undefined> {
    await Promise.resolve();
    this.#alive("read");
    const node = this.#lookup(path);
    if (!node) return undefined;
    if (node.kind === "dir") throw fsError("EISDIR", "read", path);
    return Buffer.from(node.data);
  }

  async writeFileSynced(path: string, data: Uint8Array): Promise<void> {
    const f = await this.#openTruncate(path);
    await f.write(data, 0);
    await f.sync();
    await f.close();
  }

  async rename(from: string, to: string): Promise<void> {
    await Promise.resolve();
    this.#alive("rename");
    const src = this.#lookup(from);
    if (!src) throw fsError("ENOENT", "rename", from);
    const fromParent = this.#parentDir(from, "rename");
    const toParent = this.#parentDir(to, "rename");
    const dst = this.#lookup(to);
    if (dst?.kind === "dir" && src.kind === "file") throw fsError("EISDIR", "rename", to);
    if (dst?.kind === "file" && src.kind === "dir") throw fsError("ENOTDIR", "rename", to);
    if (dst?.kind === "dir" && dst.entries.size > 0 && dst.id !== src.id) throw fsError("ENOTEMPTY", "rename", to);
    if (normalize(from) === normalize(to)) return;
    this.#gate("rename", from);
    const fromName = posix.basename(normalize(from));
    const toName = posix.basename(normalize(to));
    fromParent.entries.delete(fromName);
    toParent.entries.set(toName, src.id);
    this.#pending.push({
      label: `rename ${normalize(from)} -> ${normalize(to)}`,
      changes: [
        { dir: fromParent.id, name: fromName, target: undefined },
        { dir: toParent.id, name: toName, target: src.id },
      ],
    });
  }

  async unlink(path: string): Promise<void> {
    await Promise.resolve();
    this.#alive("unlink");
    const node = this.#lookup(path);
    if (!node) throw fsError("ENOENT", "unlink", path);
    if (node.kind === "dir") throw fsError("EISDIR", "unlink", path);
    const parent = this.#parentDir(path, "unlink");
    this.#gate("unlink", path);
    const name = posix.basename(normalize(path));
    parent.entries.delete(name);
    this.#pending.push({ label: `unlink ${normalize(path)}`, changes: [{ dir: parent.id, name, target: undefined }] });
  }

  async exists(path: string): Promise<boolean> {
    await Promise.resolve();
    this.#alive("stat");
    return this.#lookup(path) !== undefined;
  }

  async fileSize(path: string): Promise<number | undefined> {
    await Promise.resolve();
    this.#alive("stat");
    const node = this.#lookup(path);
    if (node?.kind === "dir") throw fsError("EISDIR", "stat", path);
    return node?.data.length;
  }

  async list(dir: string): Promise<string[]> {
    await Promise.resolve();
    this.#alive("readdir");
    const node = this.#lookup(dir);
    if (!node) return [];
    if (node.kind !== "dir") throw fsError("ENOTDIR", "scandir", dir);
    return [...node.entries.keys()];
  }

  async fsyncDir(dir: string): Promise<void> {
    await Promise.resolve();
    this.#alive("fsync");
    const node = this.#lookup(dir);
    if (!node) throw fsError("ENOENT", "open", dir);
    if (node.kind !== "dir") throw fsError("ENOTDIR", "open", dir);
    this.#gate("fsyncDir", dir);
    node.durable = new Map(node.entries);
    // Changes to this directory are durable now; a rename's other half waits for its own directory.
    this.#pending = this.#pending
      .map((op) => ({ label: op.label, changes: op.changes.filter((c) => c.dir !== node.id) }))
      .filter((op) => op.changes.length > 0);
  }

  async mkdirp(dir: string): Promise<void> {
    await Promise.resolve();
    this.#alive("mkdir");
    let cur = this.#dir(ROOT);
    let path = "/";
    for (const part of components(dir)) {
      path = posix.join(path, part);
      const id = cur.entries.get(part);
      if (id !== undefined) {
        const n = this.#node(id);
        if (n.kind !== "dir") throw fsError("ENOTDIR", "mkdir", path);
        cur = n;
        continue;
      }
      this.#gate("mkdir", path);
      const d: DirNode = { kind: "dir", id: this.#nextId++, entries: new Map(), durable: new Map() };
      this.#nodes.set(d.id, d);
      this.#link(cur, part, d.id, `mkdir ${path}`);
      cur = d;
    }
  }

  // ---------------------------------------------------------------- internals

  /** Throws when power is off. */
  #alive(op: string): void {
    if (this.#off) throw new PowerCut(op, 0);
  }

  /**
   * Counts one mutating operation and applies the armed power cut or failure.
   * `partial` lets a write land a prefix of itself before the error.
   */
  #gate(op: string, path: string, partial?: (fraction: number) => void): void {
    this.#alive(op);
    const idx = ++this.#ops;
    const landPrefix = (): void => {
      if (partial && this.#rng) partial(this.#rng());
    };
    if (this.#cutAt !== undefined && idx >= this.#cutAt) {
      landPrefix();
      this.#off = true;
      throw new PowerCut(op, idx);
    }
    const f = this.#fail;
    if (f && idx >= f.at && (!f.fired || f.persistent)) {
      f.fired = true;
      landPrefix();
      throw fsError(f.errno, op, path);
    }
  }

  #node(id: number): Node {
    const n = this.#nodes.get(id);
    if (!n) throw new Error(`PowerLossFs: dangling inode ${id}`);
    return n;
  }

  #dir(id: number): DirNode {
    const n = this.#node(id);
    if (n.kind !== "dir") throw new Error(`PowerLossFs: inode ${id} is not a directory`);
    return n;
  }

  #lookup(path: string): Node | undefined {
    let cur: Node = this.#dir(ROOT);
    for (const part of components(path)) {
      if (cur.kind !== "dir") return undefined;
      const id = cur.entries.get(part);
      if (id === undefined) return undefined;
      cur = this.#node(id);
    }
    return cur;
  }

  #parentDir(path: string, syscall: string): DirNode {
    const parentPath = posix.dirname(normalize(path));
    const p = this.#lookup(parentPath);
    if (!p) throw fsError("ENOENT", syscall, path);
    if (p.kind !== "dir") throw fsError("ENOTDIR", syscall, path);
    return p;
  }

  #newFile(): FileNode {
    const node: FileNode = { kind: "file", id: this.#nextId++, data: Buffer.alloc(0), durable: Buffer.alloc(0) };
    this.#nodes.set(node.id, node);
    return node;
  }

  #link(parent: DirNode, name: string, id: number, label: string): void {
    parent.entries.set(name, id);
    this.#pending.push({ label, changes: [{ dir: parent.id, name, target: id }] });
  }

  /** open(path, O_CREAT|O_TRUNC): one mutating operation either way. */
  async #openTruncate(path: string): Promise<PowerLossFile> {
    await Promise.resolve();
    this.#alive("open");
    const existing = this.#lookup(path);
    if (existing?.kind === "dir") throw fsError("EISDIR", "open", path);
    if (existing) {
      this.#gate("open(O_TRUNC)", path);
      existing.data = Buffer.alloc(0);
      return this.#handle(existing, path);
    }
    const parent = this.#parentDir(path, "open");
    this.#gate("create", path);
    const node = this.#newFile();
    this.#link(parent, posix.basename(normalize(path)), node.id, `create ${normalize(path)}`);
    return this.#handle(node, path);
  }

  #handle(node: FileNode, path: string): PowerLossFile {
    const p = normalize(path);
    return new PowerLossFile(node, p, {
      alive: (op) => this.#alive(op),
      gate: (op, partial) => this.#gate(op, p, partial),
    });
  }
}

/** How a file handle reaches its file system's power state and fault injection. */
interface FileGate {
  alive(op: string): void;
  gate(op: string, partial?: (fraction: number) => void): void;
}

class PowerLossFile implements WalFile {
  #closed = false;
  constructor(
    private readonly node: FileNode,
    private readonly path: string,
    private readonly fs: FileGate,
  ) {}

  #check(op: string): void {
    this.fs.alive(op);
    if (this.#closed) throw fsError("EBADF", op, this.path);
  }

  async read(position: number, length: number): Promise<Uint8Array> {
    await Promise.resolve();
    this.#check("read");
    return Buffer.from(this.node.data.subarray(Math.min(position, this.node.data.length), Math.min(position + length, this.node.data.length)));
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    await Promise.resolve();
    this.#check("write");
    const apply = (bytes: Uint8Array): void => {
      const end = position + bytes.byteLength;
      if (end > this.node.data.length) {
        const grown = Buffer.alloc(end);
        this.node.data.copy(grown);
        this.node.data = grown;
      }
      this.node.data.set(bytes, position);
    };
    this.fs.gate("write", (fraction) => apply(data.subarray(0, Math.floor(fraction * data.byteLength))));
    apply(data);
  }

  async sync(): Promise<void> {
    await Promise.resolve();
    this.#check("fsync");
    this.fs.gate("fsync");
    this.node.durable = Buffer.from(this.node.data);
  }

  async truncate(length: number): Promise<void> {
    await Promise.resolve();
    this.#check("ftruncate");
    this.fs.gate("ftruncate");
    if (length <= this.node.data.length) this.node.data = Buffer.from(this.node.data.subarray(0, length));
    else {
      const grown = Buffer.alloc(length);
      this.node.data.copy(grown);
      this.node.data = grown;
    }
  }

  async size(): Promise<number> {
    await Promise.resolve();
    this.#check("fstat");
    return this.node.data.length;
  }

  async close(): Promise<void> {
    await Promise.resolve();
    this.#check("close");
    this.#closed = true;
  }
}

/**
 * What survives of a file whose volatile content differs from its durable
 * content. Bytes the file system never wrote back read as the durable bytes,
 * or as zeros where the file grew (the size reached the disk, the data did not).
 */
function tornContent(durable: Buffer, volatile: Buffer, rng: Rng): { data: Buffer; outcome: TornOutcome } {
  if (durable.equals(volatile)) return { data: Buffer.from(durable), outcome: "durable" };
  const r = rng();
  const byteAt = (src: Buffer, i: number): number => (i < src.length ? (src[i] ?? 0) : 0);
  let common = 0;
  while (common < durable.length && common < volatile.length && durable[common] === volatile[common]) common++;
  const between = (lo: number, hi: number): number => lo + Math.floor(rng() * (hi - lo + 1));
  if (r < 0.35) return { data: Buffer.from(durable), outcome: "durable" };
  if (r < 0.5) return { data: Buffer.from(volatile), outcome: "all" };
  if (r < 0.75) {
    // A prefix of the unsynced change landed: volatile bytes up to `cut`, durable bytes after.
    const cut = between(common, volatile.length);
    const len = Math.max(cut, durable.length);
    const out = Buffer.alloc(len);
    for (let i = 0; i < len; i++) out[i] = i < cut ? byteAt(volatile, i) : byteAt(durable, i);
    return { data: out, outcome: "prefix" };
  }
  if (r < 0.87 && volatile.length > durable.length) {
    // The size update landed, the data did not.
    const len = between(durable.length + 1, volatile.length);
    const out = Buffer.alloc(len);
    durable.copy(out);
    return { data: out, outcome: "zeros" };
  }
  // Sector-granular writeback in any order; the size is one of the two.
  const len = rng() < 0.5 ? durable.length : volatile.length;
  const out = Buffer.alloc(len);
  for (let s = 0; s < len; s += SECTOR) {
    const src = rng() < 0.5 ? volatile : durable;
    for (let i = s; i < Math.min(len, s + SECTOR); i++) out[i] = byteAt(src, i);
  }
  return { data: out, outcome: "sectors" };
}
