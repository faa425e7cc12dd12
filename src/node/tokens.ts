import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { statSync } from "node:fs";
import { chmod, mkdir, open } from "node:fs/promises";
import type { Stats } from "node:fs";
import { z } from "zod";
import { errnoCode, isoTime, systemClock, withFileLock, writeFileAtomic } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { NodeError } from "./errors.js";
import { parseNodeFile, unreadable } from "./json-file.js";
import { stateRootPaths } from "./layout.js";

/**
 * The tool server's callers: per-agent bearer tokens. The state root keeps
 * only the SHA-256 of each token (a token is 256 random bits, so a plain hash
 * is as hard to invert as the token is to guess; no salt or KDF is needed),
 * with an id to list and revoke it by. The token itself is shown once, at
 * creation, and never written anywhere by us.
 */

/** `aut_` + 43 base64url characters (32 random bytes). */
const TOKEN_RE = /^aut_[A-Za-z0-9_-]{43}$/;
/** The same rule as the runtime config's `agent_id`: it becomes `Agent::"<id>"`. */
export const AGENT_ID_RE = /^[A-Za-z0-9._:@-]{1,128}$/;
const TOKEN_ID_RE = /^tok_[a-f0-9]{16}$/;

const entrySchema = z.strictObject({
  id: z.string().regex(TOKEN_ID_RE),
  agent_id: z.string().regex(AGENT_ID_RE),
  /** Lowercase hex SHA-256 of the token's UTF-8 bytes. */
  sha256: z.string().regex(/^[a-f0-9]{64}$/),
  created_at: z.string().min(1),
  revoked_at: z.string().min(1).optional(),
});
const fileSchema = z.strictObject({ version: z.literal(1), tokens: z.array(entrySchema) });

type TokenEntry = z.infer<typeof entrySchema>;
type TokenFileDoc = z.infer<typeof fileSchema>;

/** What `token list` shows: never the hash. */
export interface TokenInfo {
  id: string;
  agent_id: string;
  created_at: string;
  revoked: boolean;
  revoked_at?: string;
}

/** A token just created: the only time `token` exists outside the caller's hands. */
export interface CreatedToken extends TokenInfo {
  token: string;
}

/** The result of checking a presented bearer token. */
export type TokenCheck =
  | { kind: "ok"; agentId: string; tokenId: string }
  | { kind: "revoked"; agentId: string; tokenId: string }
  | { kind: "unknown" };

const EMPTY: TokenFileDoc = { version: 1, tokens: [] };

function hashOf(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

function infoOf(e: TokenEntry): TokenInfo {
  return { id: e.id, agent_id: e.agent_id, created_at: e.created_at, revoked: e.revoked_at !== undefined, ...(e.revoked_at !== undefined ? { revoked_at: e.revoked_at } : {}) };
}

/**
 * Who may have written the token file decides who the callers are: a file another user owns, or
 * one group or others may write, could list a token of theirs. Refused (fail closed), never trusted.
 */
function refuseInsecure(st: Stats, path: string): void {
  const uid = process.getuid?.();
  const problem = (st.mode & 0o022) !== 0 ? `is writable by ${(st.mode & 0o020) !== 0 ? "its group" : "other users"} (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")})`
    : uid !== undefined && st.uid !== uid ? `is owned by uid ${st.uid}, not by this process's user (uid ${uid})`
    : undefined;
  if (problem === undefined) return;
  throw new NodeError("TOKEN_STORE_INVALID", `${path} ${problem}: anyone who can write it could add a token, so it is not trusted`, {
    hint: `make it the runtime user's own and private: chown <runtime user> ${path} && chmod 600 ${path}`,
    details: { path, mode: st.mode & 0o777, uid: st.uid },
  });
}

/** Parses the token file; a missing file is "no tokens", anything unreadable or insecure fails hard (never "no tokens": that would hide a revocation list). */
async function readTokenFile(path: string): Promise<TokenFileDoc> {
  let raw: string;
  try {
    const fh = await open(path, "r");
    try {
      refuseInsecure(await fh.stat(), path); // the file read is the file checked
      raw = await fh.readFile("utf8");
    } finally {
      await fh.close();
    }
  } catch (e) {
    if (e instanceof NodeError) throw e;
    if (errnoCode(e) === "ENOENT") return EMPTY;
    throw unreadable(path, "TOKEN_STORE_INVALID", e);
  }
  return parseNodeFile(path, raw, fileSchema, "TOKEN_STORE_INVALID");
}

/** Read-modify-write of the token file under its lock; written atomically, mode 0600, in a 0700 directory. */
async function changeTokens<T>(stateRoot: string, change: (doc: TokenFileDoc) => { doc: TokenFileDoc; result: T }): Promise<T> {
  const p = stateRootPaths(stateRoot);
  await mkdir(p.root, { recursive: true });
  await mkdir(p.auth, { recursive: true, mode: 0o700 });
  // Tightened even when it already existed (made by hand, or under a loose umask): it holds the token file and its lock.
  await chmod(p.auth, 0o700);
  return withFileLock(p.tokensLock, async () => {
    const { doc, result } = change(await readTokenFile(p.tokens));
    fileSchema.parse(doc);
    await writeFileAtomic(p.tokens, `${JSON.stringify(doc, null, 2)}\n`, 0o600);
    return result;
  }, {
    onTimeout: (pid) => new NodeError("TOKEN_STORE_LOCKED", `the token file is locked by process ${pid ?? "unknown"} (${p.tokensLock})`),
  });
}

/**
 * Creates a token for `agentId`: 256 random bits as `aut_<base64url>`. Only its
 * SHA-256 is stored. The returned `token` is the one copy.
 *
 * ### Examples
 * ```ts
 * const { token, id } = await createToken("/var/lib/autonomy", "picker-arm-7");
 * // token: "aut_…" (give it to the agent); id: "tok_…" (to revoke it)
 * ```
 */
export async function createToken(stateRoot: string, agentId: string, opts: { clock?: Clock } = {}): Promise<CreatedToken> {
  if (!AGENT_ID_RE.test(agentId)) {
    throw new NodeError("TOKEN_AGENT_INVALID", `agent id ${JSON.stringify(agentId)} is not 1-128 of A-Z a-z 0-9 . _ : @ -`);
  }
  const token = `aut_${randomBytes(32).toString("base64url")}`;
  const entry: TokenEntry = {
    id: `tok_${randomBytes(8).toString("hex")}`,
    agent_id: agentId,
    sha256: hashOf(token).toString("hex"),
    created_at: isoTime(opts.clock ?? systemClock),
  };
  await changeTokens(stateRoot, (doc) => ({ doc: { ...doc, tokens: [...doc.tokens, entry] }, result: undefined }));
  return { ...infoOf(entry), token };
}

/** Every token's id, agent, creation time and revocation; never a hash. */
export async function listTokens(stateRoot: string): Promise<TokenInfo[]> {
  return (await readTokenFile(stateRootPaths(stateRoot).tokens)).tokens.map(infoOf);
}

/** Revokes a token by id; revoking a revoked token changes nothing. A running runtime refuses it (403) from its next request. */
export async function revokeToken(stateRoot: string, id: string, opts: { clock?: Clock } = {}): Promise<TokenInfo> {
  const at = isoTime(opts.clock ?? systemClock);
  return changeTokens(stateRoot, (doc) => {
    const found = doc.tokens.find((t) => t.id === id);
    if (!found) throw new NodeError("TOKEN_NOT_FOUND", `no token ${JSON.stringify(id)} in ${stateRootPaths(stateRoot).tokens}`);
    const revoked: TokenEntry = found.revoked_at !== undefined ? found : { ...found, revoked_at: at };
    return { doc: { ...doc, tokens: doc.tokens.map((t) => (t.id === id ? revoked : t)) }, result: infoOf(revoked) };
  });
}

/**
 * The runtime's view of the token file: re-read whenever the file changes
 * (one `stat` per check: an atomic rewrite always changes the inode), so a
 * token created or revoked by another process counts from the next request,
 * without a restart. An unreadable or malformed file throws on every check
 * (fail closed) until it is fixed.
 */
export class TokenVerifier {
  readonly #path: string;
  #stamp = "";
  #doc: TokenFileDoc = EMPTY;
  /** Loads in flight, by the stamp their check saw: a check joins only a load begun after the file it saw was written. */
  readonly #loads = new Map<string, Promise<TokenFileDoc>>();
  #started = 0;
  #applied = 0;

  constructor(stateRoot: string) {
    this.#path = stateRootPaths(stateRoot).tokens;
  }

  /** Where the tokens are read from (for start-up messages). */
  get path(): string {
    return this.#path;
  }

  /** Tokens that are not revoked, as the file says now. */
  async activeCount(): Promise<number> {
    return (await this.#current()).tokens.filter((t) => t.revoked_at === undefined).length;
  }

  /**
   * Checks a presented token. The hash is compared with every stored hash in
   * constant time (no early exit), so timing tells nothing about which or
   * whether any prefix matched.
   */
  async check(token: string): Promise<TokenCheck> {
    const doc = await this.#current();
    if (!TOKEN_RE.test(token)) return { kind: "unknown" };
    const presented = hashOf(token);
    let match: TokenEntry | undefined;
    for (const t of doc.tokens) {
      if (timingSafeEqual(presented, Buffer.from(t.sha256, "hex")) && match === undefined) match = t;
    }
    if (!match) return { kind: "unknown" };
    return { kind: match.revoked_at === undefined ? "ok" : "revoked", agentId: match.agent_id, tokenId: match.id };
  }

  /**
   * The file as it is at least as new as this call's stat. A load is shared only by checks that
   * saw the same stamp: joining one started before a revocation could accept the revoked token.
   * Loads may finish out of order; only the latest started one that finished sets the cache.
   */
  async #current(): Promise<TokenFileDoc> {
    const stamp = this.#stampOf();
    if (stamp === this.#stamp) return this.#doc;
    const pending = this.#loads.get(stamp);
    if (pending) return pending;
    const generation = ++this.#started;
    const load = readTokenFile(this.#path)
      .then((doc) => {
        if (generation > this.#applied) {
          this.#applied = generation;
          this.#doc = doc;
          this.#stamp = stamp;
        }
        return doc;
      })
      .finally(() => this.#loads.delete(stamp));
    this.#loads.set(stamp, load);
    return load;
  }

  /**
   * Synchronous on purpose: one stat of a small local file costs ~3 µs on the
   * event loop, an async stat ~30 µs of thread-pool round trip on every request.
   */
  #stampOf(): string {
    try {
      const s = statSync(this.#path, { bigint: true });
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
    } catch (e) {
      if (errnoCode(e) === "ENOENT") return "absent";
      throw new NodeError("TOKEN_STORE_INVALID", `cannot stat ${this.#path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
    }
  }
}
