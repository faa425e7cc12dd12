// Bad input through the real binaries (`node bin/autonomy.js …`; run `npm run build` first).
// Every failure must follow DESIGN §6: exit 2 usage, 1 failure, 4 verification; stderr carries
// one `error:` line and one `hint:` line and never a stack trace; with --json, stdout is a JSON
// document with `ok: false` and a stable `code`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { generateKeyPair } from "../../src/sign/index.js";
import { sha256Digest } from "../../src/lib/index.js";
import { uncompiledBundle } from "../helpers/policies.js";

const bin = (name: string): string => fileURLToPath(new URL(`../../bin/${name}.js`, import.meta.url));
const BINS = { autonomy: bin("autonomy"), edged: bin("edged"), edgectl: bin("edgectl") } as const;
const DIST_MAIN = fileURLToPath(new URL("../../dist/cli/autonomy-main.js", import.meta.url));
const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/lock/${name}`, import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a built binary to completion in `cwd`, with a clean environment for the variables the CLI reads. */
function run(args: readonly string[], opts: { cwd: string; env?: Record<string, string>; binary?: keyof typeof BINS }): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ["AUTONOMY_KEY_PASSWORD", "AUTONOMY_DEBUG", "AUTONOMY_REGISTRY_USERNAME", "AUTONOMY_REGISTRY_PASSWORD"]) delete env[k];
  Object.assign(env, opts.env ?? {});
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BINS[opts.binary ?? "autonomy"], ...args], { cwd: opts.cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") });
    });
  });
}

const show = (args: readonly string[], r: Run): string => `autonomy ${args.join(" ")}\nexit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
const STACK_LINE = /^\s+at /m;

/** The human-readable failure: exit code, `error:` + `hint:` lines, no stack trace. */
function expectHumanError(args: readonly string[], r: Run, exit: number): void {
  const why = show(args, r);
  expect(r.code, why).toBe(exit);
  expect(r.stderr, why).toMatch(/^error: \S.*$/m);
  expect(r.stderr, why).toMatch(/^hint: \S.*$/m);
  expect(r.stderr, why).not.toMatch(STACK_LINE);
  expect(r.stdout, why).not.toMatch(STACK_LINE);
  expect(r.stderr, why).not.toMatch(/unexpected failure|TypeError|ReferenceError/);
}

/** The machine-readable failure: same exit code, stdout is JSON with ok:false and the stable code. */
function expectJsonError(args: readonly string[], r: Run, exit: number, code: string): Record<string, unknown> {
  const why = show(args, r);
  expect(r.code, why).toBe(exit);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`stdout is not one JSON document\n${why}`);
  }
  expect(doc, why).toMatchObject({ ok: false, code });
  expect(typeof doc.message, why).toBe("string");
  expect(typeof doc.hint, why).toBe("string");
  expect(r.stderr, why).not.toMatch(STACK_LINE);
  return doc;
}

describe("autonomy CLI: bad input", () => {
  let dir: string;

  /** Runs `args` plainly and with `--json`; checks both against the contract; returns both. */
  async function expectFailure(args: readonly string[], exit: number, code: string, env?: Record<string, string>): Promise<{ human: Run; json: Run; doc: Record<string, unknown> }> {
    const jsonArgs = [...args, "--json"];
    const [human, json] = await Promise.all([run(args, { cwd: dir, ...(env ? { env } : {}) }), run(jsonArgs, { cwd: dir, ...(env ? { env } : {}) })]);
    expectHumanError(args, human, exit);
    const doc = expectJsonError(jsonArgs, json, exit, code);
    return { human, json, doc };
  }

  beforeAll(async () => {
    if (!existsSync(DIST_MAIN)) throw new Error("dist/ is missing: run `npm run build` before this suite (it drives the real binary)");
    dir = await mkdtemp(join(tmpdir(), "cli-errors-"));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe("malformed references → OCI_REFERENCE_INVALID (exit 1)", () => {
    it.each(["Bad Ref", "oci:", "host/UPPER:tag", "h/r@sha256:xyz"])("autonomy oci pull %j -o d", async (refIn) => {
      const { human, doc } = await expectFailure(["oci", "pull", refIn, "-o", "d"], 1, "OCI_REFERENCE_INVALID");
      expect(human.stderr).toContain(`"${refIn}"`);
      expect(doc.message).toContain(refIn);
      expect(existsSync(join(dir, "d"))).toBe(false);
    });
  });

  describe("usage errors → exit 2", () => {
    it("unknown command", async () => {
      await expectFailure(["frobnicate"], 2, "USAGE");
    });

    it("unknown subcommand of a group", async () => {
      await expectFailure(["oci", "frobnicate"], 2, "USAGE");
    });

    it("missing required option (oci pull without -o)", async () => {
      const { human } = await expectFailure(["oci", "pull", `oci:${join(dir, "nowhere")}:v1`], 2, "USAGE");
      expect(human.stderr).toContain("--output");
    });

    it("missing required option (verify without --key)", async () => {
      const { human } = await expectFailure(["verify", `oci:${join(dir, "nowhere")}:v1`], 2, "USAGE");
      expect(human.stderr).toContain("--key");
    });

    it("lock create with an --agent-image lacking a digest", async () => {
      await writeFile(join(dir, "bundle.tar.gz"), "bundle");
      const { human } = await expectFailure(["lock", "create", "--agent-image", "reg.example/agent:1.0", "--policy-bundle", "bundle.tar.gz", "-o", "new.lock.json"], 2, "USAGE");
      expect(human.stderr).toContain("reg.example/agent:1.0");
      expect(existsSync(join(dir, "new.lock.json"))).toBe(false);
    });

    it.each([
      ["oci push --image", ["oci", "push", "--image", "oci:LAYOUT:v1", "missing.py"], "missing.py", "image file"],
      ["oci push", ["oci", "push", "oci:LAYOUT:v1", "missing.py"], "missing.py", "file to push"],
      ["oci attach", ["oci", "attach", "oci:LAYOUT:v1", "missing.json", "--artifact-type", "application/x"], "missing.json", "file to attach"],
      ["sign --lock", ["sign", "oci:LAYOUT:v1", "--key", "input.key", "--sequence", "1", "--lock", "missing.lock.json", "--policy-bundle", "b.tar.gz"], "missing.lock.json", "lock"],
      ["lock create --policy-bundle", ["lock", "create", "--agent-image", `reg.example/a@sha256:${"0".repeat(64)}`, "--policy-bundle", "missing.tar.gz", "-o", "x.lock.json"], "missing.tar.gz", "policy bundle"],
      ["policy inspect", ["policy", "inspect", "missing.tar.gz"], "missing.tar.gz", "policy bundle"],
    ])("a missing input file (%s) → USAGE (exit 2) naming the file, never INTERNAL", async (_name, template, file, what) => {
      await writeFile(join(dir, "input.key"), generateKeyPair().privatePem, { mode: 0o600 });
      await writeFile(join(dir, "image-ok.txt"), "x\n");
      const layout = join(dir, "missing-input-layout");
      const args = template.map((a) => a.replace("LAYOUT", layout));
      const { human, doc } = await expectFailure(args, 2, "USAGE");
      expect(human.stderr).toContain(`error: cannot read ${what} "${file}": ENOENT: no such file`);
      expect(doc.message).toContain(file);
    });

    it("sign --expires-in banana", async () => {
      const pair = generateKeyPair();
      await writeFile(join(dir, "expires.key"), pair.privatePem, { mode: 0o600 });
      const { human } = await expectFailure(["sign", `oci:${join(dir, "nowhere")}:v1`, "--key", "expires.key", "--sequence", "1", "--lock", "l.json", "--policy-bundle", "b.tar.gz", "--expires-in", "banana"], 2, "USAGE");
      expect(human.stderr).toContain("banana");
    });
  });

  describe("autonomy lock verify", () => {
    const golden = async (): Promise<Record<string, unknown>> => JSON.parse(await readFile(fixture("golden.lock.json"), "utf8")) as Record<string, unknown>;

    it("a file that is not JSON → LOCK_PARSE_FAILED (exit 1)", async () => {
      await writeFile(join(dir, "notjson.lock.json"), "this is { not json\n");
      await expectFailure(["lock", "verify", "notjson.lock.json"], 1, "LOCK_PARSE_FAILED");
    });

    it("a lock failing its schema → LOCK_SCHEMA_INVALID (exit 1), the message lists the bad fields", async () => {
      const lock = await golden();
      const bad = { ...lock, schema_version: "v9", agent_artifact: { ref: "x", digest: "sha256:nothex" }, surprise: true };
      await writeFile(join(dir, "schema.lock.json"), JSON.stringify(bad));
      const { human, doc } = await expectFailure(["lock", "verify", "schema.lock.json"], 1, "LOCK_SCHEMA_INVALID");
      for (const field of ["schema_version", "agent_artifact.digest", "surprise"]) expect(human.stderr).toContain(field);
      expect(doc.fields).toEqual(expect.arrayContaining(["schema_version", "agent_artifact.digest", "surprise"]));
    });

    it("a fingerprint without the blake3: prefix → LOCK_FINGERPRINT_FORMAT (exit 1)", async () => {
      const lock = await golden();
      await writeFile(join(dir, "noprefix.lock.json"), JSON.stringify({ ...lock, behavioral_fingerprint: String(lock.behavioral_fingerprint).slice("blake3:".length) }));
      await expectFailure(["lock", "verify", "noprefix.lock.json"], 1, "LOCK_FINGERPRINT_FORMAT");
    });

    it("a tampered field → LOCK_FINGERPRINT_MISMATCH (exit 4) with expected and actual", async () => {
      const lock = await golden();
      const agent = lock.agent_artifact as Record<string, unknown>;
      await writeFile(join(dir, "tampered.lock.json"), JSON.stringify({ ...lock, agent_artifact: { ...agent, ref: "registry.example.com/fleet/evil-agent:1.4.2" } }));
      const { doc } = await expectFailure(["lock", "verify", "tampered.lock.json"], 4, "LOCK_FINGERPRINT_MISMATCH");
      expect(doc.expected).toBe(lock.behavioral_fingerprint);
      expect(doc.actual).toMatch(/^blake3:[a-f0-9]{64}$/);
      expect(doc.actual).not.toBe(lock.behavioral_fingerprint);
    });

    it("a missing file → usage error (exit 2) naming the path", async () => {
      const { human, doc } = await expectFailure(["lock", "verify", "no-such.lock.json"], 2, "USAGE");
      expect(human.stderr).toContain("no-such.lock.json");
      expect(doc.message).toContain("no-such.lock.json");
    });

    it("the golden lock verifies (exit 0)", async () => {
      const r = await run(["lock", "verify", fixture("golden.lock.json")], { cwd: dir });
      expect(r.code, show(["lock", "verify"], r)).toBe(0);
    });
  });

  describe("broken image layouts through autonomy oci pull", () => {
    it("a manifest with an unknown media type → OCI_MEDIA_TYPE_UNKNOWN (exit 1)", async () => {
      const layout = join(dir, "unknown-media");
      const mediaType = "application/vnd.example.mystery.v1+json";
      const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config: { mediaType: "application/vnd.oci.empty.v1+json", digest: "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", size: 2 }, layers: [] }));
      const digest = sha256Digest(manifest);
      await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
      await writeFile(join(layout, "blobs", "sha256", digest.slice(7)), manifest);
      await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
      await writeFile(join(layout, "index.json"), JSON.stringify({
        schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{ mediaType, digest, size: manifest.byteLength, annotations: { "org.opencontainers.image.ref.name": "v1" } }],
      }));
      const { human } = await expectFailure(["oci", "pull", `oci:${layout}:v1`, "-o", join(dir, "unknown-out")], 1, "OCI_MEDIA_TYPE_UNKNOWN");
      expect(human.stderr).toContain(mediaType);
    });

    it("a layer blob edited on disk → OCI_DIGEST_MISMATCH (exit 4), nothing written", async () => {
      const layout = join(dir, "edited");
      await writeFile(join(dir, "agent.txt"), "print('hello from the agent')\n");
      const pushed = await run(["oci", "push", `oci:${layout}:v1`, "agent.txt", "--json"], { cwd: dir });
      expect(pushed.code, show(["oci", "push"], pushed)).toBe(0);
      const layer = (JSON.parse(pushed.stdout) as { layers: { digest: string }[] }).layers[0]!.digest;
      const path = join(layout, "blobs", "sha256", layer.slice(7));
      const data = await readFile(path);
      data[0] = data[0]! ^ 0x20;
      await writeFile(path, data);
      const out = join(dir, "edited-out");
      const { doc } = await expectFailure(["oci", "pull", `oci:${layout}:v1`, "-o", out], 4, "OCI_DIGEST_MISMATCH");
      expect(doc.expected).toBe(layer);
      expect(doc.actual).toBe(sha256Digest(data));
      expect(existsSync(out) ? await readdir(out) : []).toEqual([]);
    });
  });

  it("autonomy verify on an artifact that was never signed → STATEMENT_MISSING (exit 4)", async () => {
    const layout = join(dir, "unsigned");
    await writeFile(join(dir, "unsigned.txt"), "unsigned agent\n");
    const pushed = await run(["oci", "push", `oci:${layout}:v1`, "unsigned.txt"], { cwd: dir });
    expect(pushed.code, show(["oci", "push"], pushed)).toBe(0);
    await writeFile(join(dir, "trusted.pub"), generateKeyPair().publicPem);
    const { doc } = await expectFailure(["verify", `oci:${layout}:v1`, "--key", "trusted.pub", "--repository", "reg.example/agent"], 4, "STATEMENT_MISSING");
    expect(doc.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
  });

  it("autonomy sign with a policy bundle that does not compile → POLICY_COMPILE_FAILED (exit 1), nothing attached or signed", async () => {
    const layout = join(dir, "uncompiled");
    await writeFile(join(dir, "agent-u.txt"), "agent\n");
    const pushed = await run(["oci", "push", `oci:${layout}:v1`, "agent-u.txt", "--json"], { cwd: dir });
    expect(pushed.code, show(["oci", "push"], pushed)).toBe(0);
    const digest = (JSON.parse(pushed.stdout) as { digest: string }).digest;
    // Well-formed bundle (digests, bundle_hash) around a policy missing the comma before `resource`.
    await writeFile(join(dir, "uncompiled.tar.gz"), uncompiledBundle({ "a.cedar": 'permit (principal, action == Action::"x" resource);\n' }, { name: "bad", version: "1.0.0" }).bytes);
    const locked = await run(["lock", "create", "--agent-image", `reg.example/agent@${digest}`, "--policy-bundle", "uncompiled.tar.gz", "-o", "uncompiled.lock.json"], { cwd: dir });
    expect(locked.code, show(["lock", "create"], locked)).toBe(0);
    await writeFile(join(dir, "release-u.key"), generateKeyPair().privatePem, { mode: 0o600 });
    const { human, doc } = await expectFailure(["sign", `oci:${layout}:v1`, "--key", "release-u.key", "--sequence", "1", "--lock", "uncompiled.lock.json", "--policy-bundle", "uncompiled.tar.gz", "--repository", "reg.example/agent"], 1, "POLICY_COMPILE_FAILED");
    expect(human.stderr).toMatch(/^error: a\.cedar:1:42: /m);
    expect(doc).toMatchObject({ file: "a.cedar", line: 1, column: 42 });
    const referrers = await run(["oci", "referrers", `oci:${layout}:v1`, "--json"], { cwd: dir });
    expect(referrers.code, show(["oci", "referrers"], referrers)).toBe(0);
    expect((JSON.parse(referrers.stdout) as { referrers: unknown[] }).referrers).toEqual([]);
  });

  describe("keys", () => {
    it("verify with a key file that does not exist → KEY_UNREADABLE (exit 1) naming the file", async () => {
      const { human } = await expectFailure(["verify", `oci:${join(dir, "nowhere")}:v1`, "--key", "missing.pub"], 1, "KEY_UNREADABLE");
      expect(human.stderr).toContain("missing.pub");
    });

    it("verify with a private key given as --key → KEY_UNREADABLE (exit 1), not accepted as a public key", async () => {
      const pair = generateKeyPair();
      await writeFile(join(dir, "oops.key"), pair.privatePem, { mode: 0o600 });
      const { human } = await expectFailure(["verify", `oci:${join(dir, "nowhere")}:v1`, "--key", "oops.key"], 1, "KEY_UNREADABLE");
      expect(human.stderr).toContain("oops.key");
      expect(human.stderr).toMatch(/public key/);
      expect(human.stderr).not.toContain("PRIVATE KEY");
    });

    it("sign with an encrypted key and no AUTONOMY_KEY_PASSWORD → KEY_PASSWORD_REQUIRED (exit 1)", async () => {
      const pair = generateKeyPair({ password: "correct horse" });
      await writeFile(join(dir, "enc.key"), pair.privatePem, { mode: 0o600 });
      const { human } = await expectFailure(["sign", `oci:${join(dir, "nowhere")}:v1`, "--key", "enc.key", "--sequence", "1", "--lock", "l.json", "--policy-bundle", "b.tar.gz"], 1, "KEY_PASSWORD_REQUIRED");
      expect(human.stderr).toContain("AUTONOMY_KEY_PASSWORD");
    });

    it("sign with an encrypted key and a wrong password → KEY_PASSWORD_WRONG (exit 1), password never echoed", async () => {
      const pair = generateKeyPair({ password: "correct horse" });
      await writeFile(join(dir, "enc2.key"), pair.privatePem, { mode: 0o600 });
      const { human, json } = await expectFailure(["sign", `oci:${join(dir, "nowhere")}:v1`, "--key", "enc2.key", "--sequence", "1", "--lock", "l.json", "--policy-bundle", "b.tar.gz"], 1, "KEY_PASSWORD_WRONG", { AUTONOMY_KEY_PASSWORD: "battery staple" });
      expect(human.stderr + json.stdout).not.toContain("battery staple");
    });
  });

  describe("help exits 0", () => {
    it.each([
      ["autonomy", "--help"],
      ["autonomy", "oci --help"],
      ["autonomy", "lock verify --help"],
      ["edged", "--help"],
      ["edgectl", "--help"],
    ] as const)("%s %s", async (binary, argLine) => {
      const args = argLine.split(" ");
      const r = await run(args, { cwd: dir, binary });
      expect(r.code, show(args, r)).toBe(0);
      expect(r.stdout).toMatch(/^Usage: /m);
      expect(r.stderr).toBe("");
    });
  });

  it("autonomy lock fingerprint LOCK prints exactly blake3:<64 hex> and a newline on stdout", async () => {
    const expected = (await readFile(fixture("golden.fingerprint"), "utf8")).trim();
    const r = await run(["lock", "fingerprint", fixture("golden.lock.json")], { cwd: dir });
    expect(r.code, show(["lock", "fingerprint"], r)).toBe(0);
    expect(r.stdout).toMatch(/^blake3:[a-f0-9]{64}\n$/);
    expect(r.stdout).toBe(`${expected}\n`);
    expect(r.stderr).toBe("");
  });
});
