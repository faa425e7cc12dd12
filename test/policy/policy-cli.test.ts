// `autonomy policy build` and `autonomy policy inspect` through the real binary
// (`node bin/autonomy.js …`; run `npm run build` first), and the archive read
// back by GNU tar, a tool we did not write.
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256Digest } from "../../src/lib/index.js";
import { bundleHash, readBundle, serializeManifest } from "../../src/policy/index.js";
import type { BundleManifest } from "../../src/policy/index.js";
import { describeRun, runCli, runJson, runProcess } from "../helpers/cli.js";
import type { CliJson } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";
import { tarEntry, tgz } from "../helpers/raw-tar.js";

const EXAMPLES = "examples/policies";

type BuildJson = CliJson & { path: string; digest: string; size: number; manifest: BundleManifest };
type InspectJson = BuildJson & {
  files: { name: string; digest: string; bytes: number }[];
  runtime: { version: string; compatible: boolean };
  cedar: { compiles: boolean; policies?: number; error?: string };
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "policy-cli-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
const out = (): string => join(dir, `bundle-${n++}.tar.gz`);

/** A bundle made by hand: a manifest that is right for `listed`, with `actual` as the archive's files. */
function handMade(listed: { name: string; content: string }[], actual = listed): Buffer {
  const m: BundleManifest = {
    name: "hand", policy_bundle_version: "1.0.0", required_runtime_version: "", bundle_hash: bundleHash(listed),
    created_at: "2024-01-01T00:00:00Z", engine: "cedar", files: Object.fromEntries(listed.map((f) => [f.name, sha256Digest(f.content)])),
  };
  return tgz([tarEntry({ name: "manifest.json", data: serializeManifest(m) }), ...actual.map((f) => tarEntry({ name: f.name, data: f.content }))]);
}

describe("autonomy policy build", () => {
  it("builds examples/policies and reports the digest of the file it wrote (--json)", async () => {
    const path = out();
    const r = await runJson<BuildJson>(["policy", "build", EXAMPLES, "-o", path, "--name", "demo", "--version", "1.0.0"]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.json).toMatchObject({ version: 1, ok: true, path, manifest: { name: "demo", policy_bundle_version: "1.0.0", required_runtime_version: "", engine: "cedar" } });
    const bytes = await readFile(path);
    expect(r.json.digest).toBe(sha256Digest(bytes));
    expect(r.json.size).toBe(bytes.length);
    expect(Object.keys(r.json.manifest.files)).toEqual(["echo_allow.cedar", "shell_deny.cedar"]);
    expect((await readBundle(bytes)).manifest).toEqual(r.json.manifest);
  });

  it("prints `policy build: OK`, the digest and the manifest summary as text", async () => {
    const path = out();
    const r = await runCli(["policy", "build", EXAMPLES, "-o", path, "--name", "demo", "--version", "1.2.3", "--runtime-version", ">=0.1.0 <1.0.0"]);
    expect(r.code, describeRun(r)).toBe(0);
    const digest = sha256Digest(await readFile(path));
    expect(r.stdout.split("\n")[0]).toBe("policy build: OK");
    expect(r.stdout).toContain(`digest: ${digest}`);
    expect(r.stdout).toMatch(/^name: demo$/m);
    expect(r.stdout).toMatch(/^version: 1\.2\.3$/m);
    expect(r.stdout).toMatch(/^required_runtime_version: >=0\.1\.0 <1\.0\.0$/m);
    expect(r.stdout).toMatch(/^ {2}echo_allow\.cedar +sha256:[a-f0-9]{64}$/m);
    expect(r.stderr).toBe("");
  });

  it("is reproducible: the same sources and SOURCE_DATE_EPOCH give the same bytes", async () => {
    const [a, b] = [out(), out()];
    const env = { SOURCE_DATE_EPOCH: "1700000000" };
    const ra = await runJson<BuildJson>(["policy", "build", EXAMPLES, "-o", a, "--name", "demo", "--version", "1.0.0"], { env });
    const rb = await runJson<BuildJson>(["policy", "build", EXAMPLES, "-o", b, "--name", "demo", "--version", "1.0.0"], { env });
    expect(ra.code, describeRun(ra)).toBe(0);
    expect(rb.code, describeRun(rb)).toBe(0);
    expect((await readFile(a)).equals(await readFile(b))).toBe(true);
    expect(ra.json.digest).toBe(rb.json.digest);
    expect(ra.json.manifest.created_at).toBe("2023-11-14T22:13:20Z");
  });

  needs("gnu-tar").it("writes an archive GNU tar lists as manifest.json first, regular files only, -rw-r--r-- 0/0, mtime 0", async () => {
    const path = out();
    const r = await runCli(["policy", "build", EXAMPLES, "-o", path, "--name", "demo", "--version", "1.0.0"]);
    expect(r.code, describeRun(r)).toBe(0);
    const t = await runProcess("tar", ["-tzvf", path], { env: { TZ: "UTC", LC_ALL: "C" } });
    expect(t.code, describeRun(t)).toBe(0);
    const lines = t.stdout.trim().split("\n");
    expect(lines.map((l) => l.split(/\s+/).at(-1))).toEqual(["manifest.json", "echo_allow.cedar", "shell_deny.cedar"]);
    for (const line of lines) expect(line).toMatch(/^-rw-r--r-- 0\/0 +\d+ 1970-01-01 00:00 \S+$/);
    // GNU tar also unpacks it and the manifest it finds is the one we report.
    const x = await runProcess("tar", ["-xzOf", path, "manifest.json"]);
    expect(JSON.parse(x.stdout)).toEqual((await readBundle(await readFile(path))).manifest);
  });

  it("exits 1 with BUNDLE_SOURCE_INVALID naming a subdirectory", async () => {
    const src = join(dir, "with-subdir");
    await mkdir(join(src, "nested"), { recursive: true });
    await writeFile(join(src, "a.cedar"), "permit (principal, action, resource);\n");
    const r = await runJson(["policy", "build", src, "-o", out(), "--name", "demo", "--version", "1.0.0"]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.json).toMatchObject({ ok: false, code: "BUNDLE_SOURCE_INVALID" });
    expect(String(r.json.message)).toContain('"nested"');
    expect(r.stderr).toMatch(/^error: .*\nhint: .+/m);
  });

  it("exits 1 with POLICY_COMPILE_FAILED naming file:line:column for invalid Cedar, writing nothing", async () => {
    const src = join(dir, "invalid-cedar");
    await mkdir(src, { recursive: true });
    await writeFile(join(src, "a.cedar"), 'permit (principal, action == Action::"x" resource);\n');
    const path = out();
    const r = await runJson(["policy", "build", src, "-o", path, "--name", "demo", "--version", "1.0.0"]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.json).toMatchObject({ ok: false, code: "POLICY_COMPILE_FAILED", file: "a.cedar", line: 1, column: 42 });
    expect(String(r.json.message)).toMatch(/^a\.cedar:1:42: /);
    await expect(readFile(path)).rejects.toThrow(/ENOENT/);
    const human = await runCli(["policy", "build", src, "-o", path, "--name", "demo", "--version", "1.0.0"]);
    expect(human.stderr, describeRun(human)).toMatch(/^error: a\.cedar:1:42: .*unexpected token `resource`.*\nhint: .+/m);
  });

  it("exits 1 with BUNDLE_MANIFEST_INVALID for a --version that is not semver, writing nothing", async () => {
    const path = out();
    const r = await runJson(["policy", "build", EXAMPLES, "-o", path, "--name", "demo", "--version", "v1"]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.json).toMatchObject({ ok: false, code: "BUNDLE_MANIFEST_INVALID" });
    await expect(readFile(path)).rejects.toThrow(/ENOENT/);
  });

  it("exits 2 when a required flag is missing", async () => {
    const r = await runCli(["policy", "build", EXAMPLES, "-o", out(), "--name", "demo"]);
    expect(r.code, describeRun(r)).toBe(2);
    expect(r.stderr).toMatch(/--version/);
  });

  it("leaves the program's own --version working", async () => {
    const r = await runCli(["--version"]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe("autonomy policy inspect", () => {
  let built: string;
  beforeAll(async () => {
    built = out();
    const r = await runCli(["policy", "build", EXAMPLES, "-o", built, "--name", "demo", "--version", "1.0.0", "--runtime-version", ">=0.1.0"]);
    expect(r.code, describeRun(r)).toBe(0);
  });

  it("prints the manifest, the files with their digests and the bundle digest (--json)", async () => {
    const r = await runJson<InspectJson>(["policy", "inspect", built]);
    expect(r.code, describeRun(r)).toBe(0);
    const bytes = await readFile(built);
    expect(r.json).toMatchObject({ ok: true, digest: sha256Digest(bytes), size: bytes.length, manifest: { name: "demo", required_runtime_version: ">=0.1.0" }, runtime: { compatible: true }, cedar: { compiles: true, policies: 2 } });
    expect(r.json.files.map((f) => f.name)).toEqual(["echo_allow.cedar", "shell_deny.cedar"]);
    for (const f of r.json.files) expect(f.digest).toBe(sha256Digest(await readFile(join(EXAMPLES, f.name))));
  });

  it("prints a text summary", async () => {
    const r = await runCli(["policy", "inspect", built]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toContain(`digest: ${sha256Digest(await readFile(built))}`);
    expect(r.stdout).toMatch(/^runtime .*: compatible$/m);
    expect(r.stdout).toMatch(/^cedar: 2 policies compile$/m);
  });

  it("reports, without failing, a well-formed bundle whose policies do not compile (made by hand: policy build refuses it)", async () => {
    const path = out();
    await writeFile(path, handMade([{ name: "a.cedar", content: 'permit (principal, action == Action::"x" resource);\n' }]));
    const r = await runJson<InspectJson>(["policy", "inspect", path]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.json.cedar).toMatchObject({ compiles: false, error: expect.stringMatching(/^a\.cedar:1:42: /) as unknown });
    const text = await runCli(["policy", "inspect", path]);
    expect(text.stdout).toMatch(/^cedar: does NOT compile \(policy load would refuse it\): a\.cedar:1:42: /m);
  });

  it("reports, without failing, a bundle built for another runtime", async () => {
    const path = out();
    const b = await runCli(["policy", "build", EXAMPLES, "-o", path, "--name", "future", "--version", "9.0.0", "--runtime-version", ">=99.0.0"]);
    expect(b.code, describeRun(b)).toBe(0);
    const r = await runJson<InspectJson>(["policy", "inspect", path]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.json.runtime.compatible).toBe(false);
  });

  it("exits 4 with BUNDLE_DIGEST_MISMATCH for a tampered file", async () => {
    const path = out();
    await writeFile(path, handMade([{ name: "a.cedar", content: "forbid (principal, action, resource);\n" }], [{ name: "a.cedar", content: "permit (principal, action, resource);\n" }]));
    const r = await runJson(["policy", "inspect", path]);
    expect(r.code, describeRun(r)).toBe(4);
    expect(r.json).toMatchObject({ ok: false, code: "BUNDLE_DIGEST_MISMATCH" });
  });

  it("exits 1 with BUNDLE_PATH_UNSAFE for a traversal entry, with an error and a hint line", async () => {
    const path = out();
    const good = { name: "a.cedar", content: "permit (principal, action, resource);\n" };
    await writeFile(path, handMade([good], [good, { name: "../../evil.cedar", content: "x" }]));
    const r = await runCli(["policy", "inspect", path]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/^error: entry 3 "\.\.\/\.\.\/evil\.cedar": .*traversal.*\nhint: .+/m);
  });

  it("exits 1 with BUNDLE_NOT_GZIP for a file that is not a bundle", async () => {
    const r = await runJson(["policy", "inspect", "README.md"]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.json).toMatchObject({ ok: false, code: "BUNDLE_NOT_GZIP" });
  });

  it("exits 2 for a missing file", async () => {
    const r = await runJson(["policy", "inspect", join(dir, "nope.tar.gz")]);
    expect(r.code, describeRun(r)).toBe(2);
    expect(r.json).toMatchObject({ ok: false, code: "USAGE" });
    expect(String(r.json.message)).toMatch(/cannot read policy bundle/);
  });
});

describe("autonomy policy test", () => {
  let bundle = "";
  let shellCall = "";
  beforeAll(async () => {
    bundle = out();
    expect((await runCli(["policy", "build", EXAMPLES, "-o", bundle, "--name", "demo", "--version", "1.0.0"])).code).toBe(0);
    shellCall = join(dir, "shell-call.json");
    await writeFile(shellCall, JSON.stringify({ kind: "tool.shell", params: { command: "id" } }));
  });

  it("prints the decision and its reason, and exits 0 without --expect", async () => {
    const r = await runCli(["policy", "test", bundle, "--request", shellCall]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toMatch(/^DENY: forbidden by shell_deny\npolicy_ref: demo@1\.0\.0 \(sha256:[0-9a-f]{64}\)\n$/);
  });

  it("exits 0 when the decision is the expected one", async () => {
    const r = await runJson(["policy", "test", bundle, "--request", shellCall, "--expect", "deny"]);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ version: 1, ok: true, decision: "deny", policies: ["shell_deny"], reason: "forbidden by shell_deny", errors: [] });
  });

  it("exits 1 with ok: false (not an error document) when the decision is not the expected one", async () => {
    const r = await runJson(["policy", "test", bundle, "--request", shellCall, "--expect", "allow"]);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ version: 1, ok: false, decision: "deny" });
    expect(r.json).not.toHaveProperty("code");
    const text = await runCli(["policy", "test", bundle, "--request", shellCall, "--expect", "allow"]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/\nexpected allow\n$/);
    expect(text.stderr).toBe("");
  });
});
