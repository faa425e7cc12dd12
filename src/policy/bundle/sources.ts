/** The builder's input: the `.cedar` files of a policy directory, checked entry by entry. */
import { constants } from "node:fs";
import { lstat, open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode, quote } from "../../lib/index.js";
import { PolicyError } from "../errors.js";
import { decodeUtf8 } from "./decode-utf8.js";
import { DEFAULT_BUNDLE_LIMITS } from "./limits.js";
import { POLICY_FILE_RE, compareNames } from "./names.js";

/** A policy file read from the source directory. */
export interface SourceFile {
  name: string;
  content: Buffer;
}

/** README files and markdown notes may sit next to the policies; they are left out of the bundle. */
const IGNORED_RE = /^(readme(\.[A-Za-z0-9]+)?|.+\.(md|markdown))$/i;

/** Source files are opened without following symlinks (a link swapped in after the directory scan is refused). */
const O_NOFOLLOW: number = (constants as { O_NOFOLLOW?: number }).O_NOFOLLOW ?? 0;

/** The `.cedar` files of `dir`, sorted byte-wise, after checking every entry of the directory. */
export async function readSources(dir: string): Promise<SourceFile[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    throw new PolicyError("BUNDLE_SOURCE_INVALID", `cannot read the policy directory ${quote(dir, 300)}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  const limits = DEFAULT_BUNDLE_LIMITS;
  const cedar: string[] = [];
  const folded = new Map<string, string>();
  for (const name of names.sort(compareNames)) {
    const path = join(dir, name);
    const label = `${quote(name)} in ${quote(dir, 300)}`;
    let st;
    try {
      st = await lstat(path);
    } catch (e) {
      throw sourceError(`cannot examine ${label}: ${errnoCode(e) ?? String(e)}`, name, e);
    }
    if (st.isSymbolicLink()) throw sourceError(`${label} is a symbolic link; bundle only regular files`, name);
    if (st.isDirectory()) throw sourceError(`${label} is a directory; bundles are flat (put policies directly in the directory)`, name);
    if (!st.isFile()) throw sourceError(`${label} is not a regular file`, name);
    if (name.endsWith(".cedar")) {
      if (!POLICY_FILE_RE.test(name)) {
        throw sourceError(`${label}: policy file names must be 1-128 letters, digits, '.', '_' or '-' (starting with a letter or digit) followed by .cedar`, name);
      }
      const other = folded.get(name.toLowerCase());
      if (other !== undefined) throw sourceError(`${label} and ${quote(other)} differ only in letter case`, name);
      folded.set(name.toLowerCase(), name);
      cedar.push(name);
    } else if (!IGNORED_RE.test(name)) {
      throw sourceError(`${label} is neither a .cedar policy nor a README/markdown file`, name);
    }
  }
  if (cedar.length === 0) throw sourceError(`${quote(dir, 300)} has no .cedar files`);
  if (cedar.length + 1 > limits.maxEntries) {
    throw new PolicyError("BUNDLE_TOO_MANY_ENTRIES", `${quote(dir, 300)} has ${cedar.length} policy files; a bundle holds at most ${limits.maxEntries - 1}`);
  }
  const files: SourceFile[] = [];
  for (const name of cedar) {
    const content = await readRegularFile(join(dir, name), name, limits.maxEntryBytes);
    if (decodeUtf8(content) === undefined) throw sourceError(`${quote(name)} is not UTF-8 text`, name);
    files.push({ name, content });
  }
  return files;
}

/** Reads a regular file without following a symlink, refusing more than `max` bytes. */
async function readRegularFile(path: string, name: string, max: number): Promise<Buffer> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | O_NOFOLLOW);
  } catch (e) {
    throw sourceError(`cannot open ${quote(name)}: ${errnoCode(e) ?? String(e)}`, name, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw sourceError(`${quote(name)} is not a regular file`, name);
    if (st.size > max) throw new PolicyError("BUNDLE_TOO_LARGE", `${quote(name)} is ${st.size} bytes; a policy file may be at most ${max} bytes`, { details: { entry: name } });
    const content = await fh.readFile();
    if (content.length > max) throw new PolicyError("BUNDLE_TOO_LARGE", `${quote(name)} grew past ${max} bytes while being read`, { details: { entry: name } });
    return content;
  } finally {
    await fh.close();
  }
}

/** A `BUNDLE_SOURCE_INVALID` error, naming the directory entry at fault when there is one. */
function sourceError(message: string, entry?: string, cause?: unknown): PolicyError {
  return new PolicyError("BUNDLE_SOURCE_INVALID", message, {
    ...(entry !== undefined ? { details: { entry } } : {}),
    ...(cause !== undefined ? { cause } : {}),
  });
}
