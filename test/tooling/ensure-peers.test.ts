// scripts/ensure-peers.ts, the first step of `npm test`: silent when every peer is here, an install
// plan as root on Debian, and otherwise a failure naming what is missing with the exact install
// command and the skip variable. The script runs for real with a PATH that lacks a peer (a
// directory of links to the real programs, minus the one removed); apt-get is never on that PATH,
// so these tests cannot install anything.
import { chmod, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { APT_GET, currentMachine, failMessage, planPeers } from "../../scripts/ensure-peers.js";
import { describeRun, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";
import { CAPABILITIES, findCommand, forgetProbes, installCommand, missing, parseSkip } from "../helpers/peers.js";
import type { Capability } from "../helpers/peers.js";

const SCRIPT = new URL("../../scripts/ensure-peers.ts", import.meta.url).pathname;
const ROOT_APT = { isRoot: true, hasApt: true };
const absent = (entries: [Capability, string][]): Map<Capability, string> => new Map(entries);

describe("planPeers", () => {
  it("does nothing when nothing is missing", () => {
    expect(planPeers(absent([]), ROOT_APT)).toEqual({ action: "none" });
  });

  it("installs the Debian packages of what is missing as root on Debian", () => {
    const plan = planPeers(absent([["mkfs.xfs", "mkfs.xfs not found"], ["skopeo", "skopeo not found"], ["util-linux", "losetup not found"]]), ROOT_APT);
    expect(plan).toEqual({ action: "install", packages: ["mount", "skopeo", "util-linux", "xfsprogs"], missing: ["mkfs.xfs", "skopeo", "util-linux"] });
  });

  it("installs what apt can provide even when loop devices are missing too (the re-check reports them)", () => {
    const plan = planPeers(absent([["loop-devices", "no free loop device"], ["strace", "strace not found"]]), ROOT_APT);
    expect(plan).toMatchObject({ action: "install", packages: ["strace"] });
  });

  it("fails when not root, printing the sudo install command and the skip variable", () => {
    const plan = planPeers(absent([["skopeo", "skopeo not found on the PATH"], ["root", "not root (uid 1000)"]]), { isRoot: false, hasApt: true });
    expect(plan.action).toBe("fail");
    const message = plan.action === "fail" ? plan.message : "";
    expect(message).toContain("skopeo: skopeo not found on the PATH (needed by test/supplychain/interop-skopeo");
    expect(message).toContain("root: not root (uid 1000)");
    expect(message).toContain("Not installed automatically (not root)");
    expect(message).toContain("sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends skopeo\n");
    expect(message).toContain("AUTONOMY_TEST_SKIP=skopeo,root npm test");
  });

  it("fails off Debian with the Debian command and the programs to install, keeping skips already asked for", () => {
    const message = failMessage(absent([["b3sum", "b3sum not found on the PATH"]]), { isRoot: true, hasApt: false }, ["root"]);
    expect(message).toContain("not a Debian system with apt-get");
    expect(message).toContain("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends b3sum");
    expect(message).toContain("Elsewhere, install the programs b3sum with your package manager.");
    expect(message).toContain("AUTONOMY_TEST_SKIP=root,b3sum npm test");
  });
});

describe("apt-get and tar on a PATH npm controls", () => {
  it("finds apt-get only at /usr/bin/apt-get, never through the PATH (npm puts node_modules/.bin first)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ensure-peers-apt-"));
    const path = process.env.PATH;
    try {
      await writeFile(join(dir, "apt-get"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      process.env.PATH = `${dir}:${path ?? ""}`;
      expect(APT_GET).toBe("/usr/bin/apt-get");
      expect(currentMachine((p) => p === "/etc/debian_version").hasApt).toBe(false); // a PATH apt-get does not count
      expect(currentMachine((p) => p === APT_GET || p === "/etc/debian_version").hasApt).toBe(true);
    } finally {
      process.env.PATH = path;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("names a non-GNU tar first on the PATH (the tests spawn `tar` from the PATH)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ensure-peers-tar-"));
    const path = process.env.PATH;
    try {
      await writeFile(join(dir, "tar"), "#!/bin/sh\necho 'bsdtar 3.7.2 - libarchive 3.7.2'\n", { mode: 0o755 });
      process.env.PATH = `${dir}:${path ?? ""}`;
      forgetProbes();
      expect(missing("gnu-tar")).toBe(`a non-GNU tar is first on PATH: ${join(dir, "tar")} (\`tar --version\`: bsdtar 3.7.2 - libarchive 3.7.2)`);
    } finally {
      process.env.PATH = path;
      forgetProbes();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("does not apt-get install tar when a non-GNU tar shadows it on the PATH (it would on every run, and still fail)", () => {
    const shadowed = "a non-GNU tar is first on PATH: /opt/bsd/bin/tar (`tar --version`: bsdtar 3.7.2)";
    const plan = planPeers(absent([["gnu-tar", shadowed]]), ROOT_APT);
    expect(plan.action).toBe("fail");
    const message = plan.action === "fail" ? plan.message : "";
    expect(message).toContain(`gnu-tar: ${shadowed}`);
    expect(message).toContain("put GNU tar's directory first on the PATH");
    expect(message).not.toContain("apt-get install");
    // Installable things are still installed; the shadowing tar is reported after the re-check.
    expect(planPeers(absent([["gnu-tar", shadowed], ["b3sum", "b3sum not found on the PATH"]]), ROOT_APT)).toEqual({ action: "install", packages: ["b3sum"], missing: ["b3sum"] });
    // A missing tar, or a non-GNU one where Debian's package puts tar, is apt's to fix.
    expect(planPeers(absent([["gnu-tar", "tar not found on the PATH"]]), ROOT_APT)).toMatchObject({ action: "install", packages: ["tar"] });
    expect(planPeers(absent([["gnu-tar", "a non-GNU tar is first on PATH: /usr/bin/tar (`tar --version`: busybox)"]]), ROOT_APT)).toMatchObject({ action: "install", packages: ["tar"] });
  });
});

describe("AUTONOMY_TEST_SKIP", () => {
  it("names capabilities separated by commas or spaces", () => {
    expect(parseSkip("root, loop-devices skopeo,,")).toEqual(["root", "loop-devices", "skopeo"]);
    expect(parseSkip(undefined)).toEqual([]);
  });

  it("refuses a name that is not a capability, listing the known ones", () => {
    expect(() => parseSkip("root,sckopeo")).toThrow(/AUTONOMY_TEST_SKIP names "sckopeo", which is not a capability; known: skopeo, docker-registry/);
  });

  it("has one install command form for root and one for sudo", () => {
    expect(installCommand(["a", "b"], true)).toBe("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends a b");
    expect(installCommand(["a"], false)).toBe("sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends a");
  });
});

// The real script on a PATH of links to every program a capability needs, without apt-get.
const PROGRAMS = ["skopeo", "docker-registry", "b3sum", "openssl", "git", "strace", "gcc", "python3", "tar", "mount", "umount", "losetup", "mkfs.ext4", "mkfs.xfs", "ps", "systemd-analyze", "promtool"];

describe("scripts/ensure-peers.ts (real runs)", () => {
  let bin = "";
  beforeAll(async () => {
    bin = await mkdtemp(join(tmpdir(), "ensure-peers-bin-"));
    await chmod(bin, 0o755); // the non-root run looks here too
    for (const p of PROGRAMS) {
      const found = findCommand(p);
      if (found) await symlink(found, join(bin, p));
    }
  });
  afterAll(async () => {
    if (bin) await rm(bin, { recursive: true, force: true });
  });

  const run = (env: Record<string, string | undefined>): Promise<RunResult> =>
    runProcess(process.execPath, ["--import", "tsx", SCRIPT], { env: { AUTONOMY_TEST_SKIP: undefined, ...env } });

  // Every capability is present on a machine that runs the whole suite; the fixture PATH must reproduce that.
  const everything = needs(...CAPABILITIES);

  everything.it("is silent and exits 0 when every peer is present", async () => {
    const r = await run({ PATH: bin });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout + r.stderr).toBe("");
  });

  everything.it("fails before anything runs when skopeo is missing, naming it with the install command", async () => {
    await rm(join(bin, "skopeo"));
    try {
      const r = await run({ PATH: bin });
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stderr).toContain("skopeo: skopeo not found on the PATH");
      expect(r.stderr).toContain("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends skopeo");
      expect(r.stderr).toContain("AUTONOMY_TEST_SKIP=skopeo npm test");
      // Named in AUTONOMY_TEST_SKIP, it is neither checked nor installed.
      const skipped = await run({ PATH: bin, AUTONOMY_TEST_SKIP: "skopeo" });
      expect(skipped.code, describeRun(skipped)).toBe(0);
      expect(skipped.stdout + skipped.stderr).toBe("");
    } finally {
      await symlink(findCommand("skopeo") ?? "/usr/bin/skopeo", join(bin, "skopeo"));
    }
  });

  it("exits 2 on a misspelt AUTONOMY_TEST_SKIP", async () => {
    const r = await run({ PATH: bin, AUTONOMY_TEST_SKIP: "rot" });
    expect(r.code, describeRun(r)).toBe(2);
    expect(r.stderr).toContain('AUTONOMY_TEST_SKIP names "rot", which is not a capability');
  });

  needs("root", "util-linux").it("as root without CAP_SYS_ADMIN (an unprivileged container's root), fails naming root", async () => {
    const setpriv = findCommand("setpriv");
    expect(setpriv, "setpriv (util-linux) drops the capability").toBeDefined();
    const r = await runProcess(setpriv ?? "setpriv", ["--bounding-set=-sys_admin", process.execPath, "--import", "tsx", SCRIPT], { env: { PATH: bin, AUTONOMY_TEST_SKIP: undefined } });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toContain("root: uid 0 but without CAP_SYS_ADMIN (an unprivileged container?), so mount and losetup are refused");
    expect(r.stderr).toMatch(/AUTONOMY_TEST_SKIP=\S*\broot\b\S* npm test/);
  });

  needs("root", "util-linux").it("as a user who is not root, fails naming root and how to skip it", async () => {
    const setpriv = findCommand("setpriv");
    expect(setpriv, "setpriv (util-linux) runs the script as nobody").toBeDefined();
    const r = await runProcess(setpriv ?? "setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "--import", "tsx", SCRIPT], {
      env: { PATH: bin, HOME: tmpdir(), AUTONOMY_TEST_SKIP: undefined },
    });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toContain("root: not root (uid 65534)");
    expect(r.stderr).toMatch(/AUTONOMY_TEST_SKIP=\S*\broot\b\S* npm test/);
  });
});
