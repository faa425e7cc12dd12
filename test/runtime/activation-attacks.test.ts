/**
 * Issue 9's attacks 1 and 2, reproduced end to end with the CLI as the issue
 * reproduced them: `autonomy sign` publishes releases, `autonomy runtime
 * activate` is the node, `runtime status` is what the operator sees.
 * Releases are built with the library (image, lock, bundle files) and signed
 * and activated through the real binary.
 */
import { describe, expect, it, beforeAll } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLock, serializeLock } from "../../src/lock/index.js";
import { copyArtifact, openRepository, parseReference, pushArtifact } from "../../src/oci/index.js";
import { buildBundle } from "../../src/policy/index.js";
import type { NodeState } from "../../src/node/index.js";
import { sha256Digest } from "../../src/lib/index.js";
import { describeRun, runJson } from "../helpers/cli.js";
import { EXAMPLE_POLICY_DIR } from "../helpers/policies.js";
import { policyDir, testKeys } from "../helpers/release.js";

/** The signed identity of every release here (oci: layouts do not name one). */
const REPOSITORY = "registry.example/prod/agent";

interface Files {
  lock: string;
  bundle: string;
  bundleDigest: string;
}

describe("release attacks against the node, through the CLI", () => {
  let dir: string;
  let key: { priv: string; pub: string };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "attacks-"));
    const k = testKeys();
    key = { priv: join(dir, "release.key"), pub: join(dir, "release.pub") };
    await writeFile(key.priv, k.privatePem, { mode: 0o600 });
    await writeFile(key.pub, k.publicPem);
  });

  const cli = async <T = Record<string, unknown>>(args: string[], expectCode = 0): Promise<T & { code?: string }> => {
    const r = await runJson<T & { code?: string }>(args);
    expect(r.code, describeRun(r)).toBe(expectCode);
    return r.json;
  };
  const trustNode = (stateRoot: string) => cli(["runtime", "trust", "set", "--state-root", stateRoot, "--key", key.pub, "--repository", REPOSITORY, "--json"]);
  const activate = (ref: string, stateRoot: string, code = 0) => cli<{ changed?: boolean; activation?: { sequence: number; statement_digest: string } }>(["runtime", "activate", ref, "--state-root", stateRoot, "--json"], code);
  const status = async (stateRoot: string): Promise<NodeState> => (await cli<{ state: NodeState }>(["runtime", "status", "--state-root", stateRoot, "--json"])).state;
  const sign = (ref: string, sequence: number, f: Files) =>
    cli<{ statement: { digest: string } }>(["sign", ref, "--key", key.priv, "--sequence", String(sequence), "--lock", f.lock, "--policy-bundle", f.bundle, "--repository", REPOSITORY, "--json"]);

  /** An image in `oci:<dir>/<repo>:<tag>`; the same text gives the same digest. */
  async function image(repo: string, tag: string, text: string): Promise<{ ref: string; digest: string }> {
    const ref = `oci:${join(dir, repo)}:${tag}`;
    const pushed = await pushArtifact(openRepository(parseReference(ref)), [{ name: "agent.py", data: new TextEncoder().encode(text) }], { artifactType: "application/vnd.autonomyops.agent.v1", tag });
    return { ref, digest: pushed.digest };
  }

  /** A bundle and a lock pinning `digest` to it, as files `autonomy sign` names. */
  async function files(name: string, digest: string, policies: string): Promise<Files> {
    const built = await buildBundle(policies, { name, version: "1.0.0", createdAt: new Date(0) });
    const lock = await createLock({ agentImageRef: `${REPOSITORY}:x`, agentDigest: digest, policyBundleRef: `${name}:1.0.0`, policyBundleDigest: built.digest });
    const f = { lock: join(dir, `${name}-${digest.slice(7, 15)}.lock.json`), bundle: join(dir, `${name}-${digest.slice(7, 15)}.tar.gz`), bundleDigest: built.digest };
    await writeFile(f.lock, serializeLock(lock));
    await writeFile(f.bundle, built.bytes);
    return f;
  }

  it("attack 1: mix-and-match downgrade at the same sequence is refused and recorded", async () => {
    const stateRoot = join(dir, "node-1");
    await trustNode(stateRoot);
    const shown = await cli<{ configured: boolean; trust: { keys: string[]; threshold: number; repository: string } }>(["runtime", "trust", "show", "--state-root", stateRoot, "--json"]);
    expect(shown).toMatchObject({ configured: true, trust: { threshold: 1, repository: REPOSITORY } });
    expect(shown.trust.keys).toHaveLength(1);
    // Release 1 = image A + permissive bundle (sequence 1); release 2 = the same image A + the strict example bundle (sequence 2).
    const a = await image("reg", "a", "print('agent A')\n");
    const permissive = await files("permissive", a.digest, await policyDir({ "all.cedar": "permit(principal, action, resource);" }));
    const strict = await files("strict", a.digest, EXAMPLE_POLICY_DIR);
    await sign(a.ref, 1, permissive);
    const release2 = await sign(a.ref, 2, strict);
    const active = await activate(a.ref, stateRoot);
    expect(active.activation).toMatchObject({ sequence: 2, statement_digest: release2.statement.digest });

    // The attacker's store: release 1's lock, bundle and statement, plus release 2's statement copied byte for byte
    // (everything of the registry copied, then release 2's lock and bundle taken away).
    const evilRef = `oci:${join(dir, "evil")}:a`;
    await copyArtifact(openRepository(parseReference(a.ref)), "a", openRepository(parseReference(evilRef)), "a", { referrers: true });
    for (const blob of [strict.bundleDigest, await lockDigest(strict.lock)]) await rm(join(dir, "evil", "blobs", "sha256", blob.slice(7)));
    const refused = await activate(evilRef, stateRoot, 4);
    expect(refused.code).toMatch(/_MISSING$/);
    let s = await status(stateRoot);
    expect(s.current?.digest).toBe(strict.bundleDigest);
    expect(s.activation?.statement_digest).toBe(release2.statement.digest);

    // A different statement at sequence 2 naming the permissive bundle (a stolen key, or a signing mistake) is equivocation:
    // refused with both digests, and recorded where the operator sees it.
    const b = `oci:${join(dir, "equivocal")}:a`;
    await copyArtifact(openRepository(parseReference(a.ref)), "a", openRepository(parseReference(b)), "a", { referrers: false });
    const second = await sign(b, 2, permissive);
    const equivocation = await activate(b, stateRoot, 4);
    expect(equivocation).toMatchObject({ code: "ACTIVATION_EQUIVOCATION", sequence: 2, recorded: release2.statement.digest, offered: second.statement.digest });
    s = await status(stateRoot);
    expect(s.current?.digest).toBe(strict.bundleDigest);
    expect(s.equivocations).toEqual([expect.objectContaining({ sequence: 2, recorded: release2.statement.digest, offered: second.statement.digest })]);
  }, 120_000);

  it("attack 2: a signed rollback replayed after a higher sequence is refused", async () => {
    const stateRoot = join(dir, "node-2");
    await trustNode(stateRoot);
    const v1 = await image("line", "v1", "print('one')\n");
    const v3 = await image("line", "v3", "print('three')\n");
    const f1 = await files("one", v1.digest, EXAMPLE_POLICY_DIR);
    const f3 = await files("three", v3.digest, await policyDir({ "echo.cedar": 'permit(principal, action == Action::"tool:tool.echo", resource);' }));
    await sign(v1.ref, 1, f1);
    await sign(v3.ref, 3, f3);
    await activate(v1.ref, stateRoot);
    await activate(v3.ref, stateRoot);
    // Release 1's statement, genuinely signed and once active, offered again.
    const replay = await activate(v1.ref, stateRoot, 4);
    expect(replay).toMatchObject({ code: "ACTIVATION_ROLLBACK_REFUSED", offered: 1, highest: 3 });
    expect((await status(stateRoot)).activation?.sequence).toBe(3);
    // What an attacker keeps: release 1 as it was published (its image then carries only statement 1).
    const saved = `oci:${join(dir, "saved")}:v1`;
    await copyArtifact(openRepository(parseReference(v1.ref)), "v1", openRepository(parseReference(saved)), "v1", { referrers: true });

    // The right way back: release 1's content re-signed as a new release, accepted as an upgrade.
    const prod = `oci:${join(dir, "line")}:prod`;
    const notHigher = await cli(["release", "rollback", prod, "--to", v1.ref, "--sequence", "1", "--key", key.priv, "--repository", REPOSITORY, "--json"], 2);
    expect(notHigher.code).toBe("USAGE");
    const back = await cli<{ statement: { digest: string; predicate: { sequence: number } } }>(["release", "rollback", prod, "--to", v1.ref, "--sequence", "4", "--key", key.priv, "--repository", REPOSITORY, "--json"]);
    expect(back.statement.predicate.sequence).toBe(4);
    const upgraded = await activate(prod, stateRoot);
    expect(upgraded.activation).toMatchObject({ sequence: 4, statement_digest: back.statement.digest });
    const s = await status(stateRoot);
    expect(s.activation).toMatchObject({ image_digest: v1.digest, policy_digest: f1.bundleDigest });
    // And neither old statement comes back (v1's image now also carries statement 4: the highest is chosen).
    expect((await activate(saved, stateRoot, 4)).code).toBe("ACTIVATION_ROLLBACK_REFUSED");
    expect((await activate(v3.ref, stateRoot, 4)).code).toBe("ACTIVATION_ROLLBACK_REFUSED");
  }, 120_000);
});

async function lockDigest(path: string): Promise<string> {
  return sha256Digest(await readFile(path));
}
