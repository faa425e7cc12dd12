import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TokenVerifier, createToken, listTokens, revokeToken, stateRootPaths } from "./index.js";
import { needs } from "../../test/helpers/needs.js";

let root = "";
beforeEach(async () => {
  root = join(await mkdtemp(join(tmpdir(), "tokens-")), "state");
});
afterEach(async () => {
  await rm(join(root, ".."), { recursive: true, force: true });
});

describe("tool-server tokens (src/node/tokens.ts)", () => {
  it("creates 256-bit aut_ tokens, each distinct, and verifies each as its own agent", async () => {
    const a = await createToken(root, "agent-a");
    const b = await createToken(root, "agent-b");
    expect(a.token).toMatch(/^aut_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a.token.slice(4), "base64url")).toHaveLength(32);
    expect(a.token).not.toBe(b.token);
    const v = new TokenVerifier(root);
    expect(await v.check(a.token)).toEqual({ kind: "ok", agentId: "agent-a", tokenId: a.id });
    expect(await v.check(b.token)).toEqual({ kind: "ok", agentId: "agent-b", tokenId: b.id });
    expect(await v.check(`${a.token.slice(0, -1)}${a.token.endsWith("A") ? "B" : "A"}`)).toEqual({ kind: "unknown" });
    expect(await v.check("")).toEqual({ kind: "unknown" });
    expect(await v.activeCount()).toBe(2);
  });

  it("keeps every token when several processes' creates race (the file lock)", async () => {
    const created = await Promise.all(Array.from({ length: 8 }, (_, i) => createToken(root, `agent-${i}`)));
    expect((await listTokens(root)).map((t) => t.id).sort()).toEqual(created.map((t) => t.id).sort());
  });

  it("sees a revocation and a new token written by another process at the next check", async () => {
    const v = new TokenVerifier(root);
    expect(await v.activeCount()).toBe(0);
    const a = await createToken(root, "agent-a");
    expect((await v.check(a.token)).kind).toBe("ok");
    const info = await revokeToken(root, a.id);
    expect(info).toMatchObject({ id: a.id, revoked: true });
    expect(await v.check(a.token)).toEqual({ kind: "revoked", agentId: "agent-a", tokenId: a.id });
    expect(await v.activeCount()).toBe(0);
    // Revoking twice keeps the first revocation time.
    expect((await revokeToken(root, a.id)).revoked_at).toBe(info.revoked_at);
  });

  it("attack 5: a check that starts while an earlier reload is in flight never accepts a token revoked in between (403 from the next request, under concurrency)", async () => {
    let accepted = 0;
    for (let i = 0; i < 40; i++) {
      const r = join(root, `r${i}`);
      const { token } = await createToken(r, "agent-a");
      const path = stateRootPaths(r).tokens;
      const v = new TokenVerifier(r);
      expect((await v.check(token)).kind).toBe("ok");
      const doc = JSON.parse(readFileSync(path, "utf8")) as { tokens: { revoked_at?: string }[] };
      // A harmless rewrite (another token's creation) starts a reload …
      writeFileSync(`${path}.a`, JSON.stringify(doc));
      renameSync(`${path}.a`, path);
      const first = v.check(token);
      // … the token is revoked while that reload is in flight …
      doc.tokens[0]!.revoked_at = "2026-01-01T00:00:00Z";
      writeFileSync(`${path}.b`, JSON.stringify(doc));
      renameSync(`${path}.b`, path);
      // … and the next request, which saw the revoked file's stamp, must not join the older reload.
      if ((await v.check(token)).kind === "ok") accepted++;
      await first;
      expect((await v.check(token)).kind).toBe("revoked");
    }
    expect(accepted).toBe(0);
  });

  it("attack 5: fails closed on a token file others could write (group/world-writable, or owned by another user); the auth dir is tightened to 0700", async () => {
    const a = await createToken(root, "agent-a");
    const path = stateRootPaths(root).tokens;
    const v = new TokenVerifier(root);
    expect((await v.check(a.token)).kind).toBe("ok");
    for (const mode of [0o620, 0o602, 0o666]) {
      await chmod(path, mode);
      await expect(v.check(a.token), mode.toString(8)).rejects.toMatchObject({ code: "TOKEN_STORE_INVALID", message: expect.stringMatching(/writable by (its group|other users)/) as unknown });
      await expect(listTokens(root)).rejects.toMatchObject({ code: "TOKEN_STORE_INVALID" });
      await expect(createToken(root, "agent-b")).rejects.toMatchObject({ code: "TOKEN_STORE_INVALID" });
    }
    await chmod(path, 0o600);
    expect((await v.check(a.token)).kind).toBe("ok");
    // An auth directory made loosely beforehand is tightened when a token is created.
    const other = join(root, "..", "loose");
    await mkdir(join(other, "auth"), { recursive: true, mode: 0o777 });
    await chmod(join(other, "auth"), 0o777);
    await createToken(other, "agent-c");
    expect((await stat(join(other, "auth"))).mode & 0o777).toBe(0o700);
  });

  // Making a file owned by another user needs root: needs() runs it or fails saying so (skipped only by AUTONOMY_TEST_SKIP=root, listed).
  needs("root").it("attack 5: fails closed on a token file owned by another user", async () => {
    const a = await createToken(root, "agent-a");
    const path = stateRootPaths(root).tokens;
    const v = new TokenVerifier(root);
    await chown(path, 4242, 4242);
    await expect(v.check(a.token)).rejects.toMatchObject({ code: "TOKEN_STORE_INVALID", message: expect.stringContaining("owned by uid 4242") as unknown });
    await chown(path, 0, 0);
    expect((await v.check(a.token)).kind).toBe("ok");
  });

  it("fails closed on a damaged token file: every check throws TOKEN_STORE_INVALID, never 'no tokens'", async () => {
    const a = await createToken(root, "agent-a");
    const v = new TokenVerifier(root);
    expect((await v.check(a.token)).kind).toBe("ok");
    const path = stateRootPaths(root).tokens;
    await writeFile(path, (await readFile(path, "utf8")).replace('"version": 1', '"version": 2'));
    await expect(v.check(a.token)).rejects.toMatchObject({ code: "TOKEN_STORE_INVALID" });
    await expect(createToken(root, "agent-b")).rejects.toMatchObject({ code: "TOKEN_STORE_INVALID" });
    await writeFile(path, "{");
    await expect(listTokens(root)).rejects.toMatchObject({ code: "TOKEN_STORE_INVALID" });
  });
});
