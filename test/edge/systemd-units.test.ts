/**
 * packaging/systemd: the units render (placeholders replaced) and
 * `systemd-analyze verify` accepts them without printing a single warning
 * (it exits 0 on unknown keys and bad values, and only prints them: any
 * output fails this test). Their hardening and ordering are asserted too.
 */
import { describe, expect, it, beforeAll } from "vitest";
import { chmod, mkdir, mkdtemp, readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";

const UNITS_DIR = join(REPO_ROOT, "packaging", "systemd");
const UNITS = ["edged-precheck.service", "edged.service", "autonomy-runtime.service"];

interface Rendered {
  dir: string;
  prefix: string;
  stateRoot: string;
  runtimeDir: string;
}

async function render(out: string, edit: (name: string, text: string) => string = (_n, t) => t): Promise<Rendered> {
  const r = { dir: join(out, "units"), prefix: join(out, "prefix"), stateRoot: join(out, "var", "lib", "autonomy"), runtimeDir: join(out, "opt", "autonomy-runtime") };
  await mkdir(r.dir, { recursive: true });
  await mkdir(join(r.prefix, "bin"), { recursive: true });
  // verify checks that ExecStart= names an executable: the launchers an install puts there.
  for (const bin of ["edged", "autonomy"]) {
    await writeFile(join(r.prefix, "bin", bin), "#!/bin/sh\nexit 0\n");
    await chmod(join(r.prefix, "bin", bin), 0o755);
  }
  for (const name of UNITS) {
    const text = (await readFile(join(UNITS_DIR, name), "utf8"))
      .replaceAll("@INSTALL_PREFIX@", r.prefix).replaceAll("@STATE_ROOT@", r.stateRoot).replaceAll("@RUNTIME_DIR@", r.runtimeDir);
    await writeFile(join(r.dir, name), edit(name, text));
  }
  return r;
}

async function verify(dir: string): Promise<{ code: number; output: string }> {
  const r = await runProcess("systemd-analyze", ["verify", "--man=no", ...UNITS.map((u) => join(dir, u))], { cwd: dir });
  return { code: r.code, output: `${r.stdout}${r.stderr}`.trim() };
}

/** `Key=value` lines of a unit (the last one wins, as systemd reads single-valued keys). */
function directives(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split("\n")) {
    const at = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (at?.[1] !== undefined) m.set(at[1], at[2] ?? "");
  }
  return m;
}

describe("packaging/systemd units", () => {
  const systemd = needs("systemd");
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "systemd-units-"));
  });

  it("are exactly the three units, each with only the documented placeholders", async () => {
    expect((await readdir(UNITS_DIR)).sort()).toEqual([...UNITS].sort());
    for (const name of UNITS) {
      const placeholders = new Set((await readFile(join(UNITS_DIR, name), "utf8")).match(/@[A-Z_]+@/g));
      for (const p of placeholders) expect(["@INSTALL_PREFIX@", "@STATE_ROOT@", "@RUNTIME_DIR@"]).toContain(p);
    }
  });

  systemd.it("render and pass `systemd-analyze verify` without a single warning", async () => {
    const r = await render(join(work, "ok"));
    for (const name of UNITS) expect(await readFile(join(r.dir, name), "utf8")).not.toMatch(/@[A-Z_]+@/);
    expect(await verify(r.dir)).toEqual({ code: 0, output: "" });
  }, 60_000);

  systemd.it("a rendering with a misspelt directive is caught (the check can fail)", async () => {
    const r = await render(join(work, "typo"), (name, t) => (name === "edged.service" ? t.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes") : t));
    const v = await verify(r.dir);
    expect(v.output).toMatch(/Unknown key 'NoNewPrivilege'/);
  }, 60_000);

  it("are hardened: the state root is the only writable path (the precheck also writes the runtime install dir)", async () => {
    const r = await render(join(work, "hardening"));
    for (const name of UNITS) {
      const d = directives(await readFile(join(r.dir, name), "utf8"));
      expect(d.get("ProtectSystem"), name).toBe("strict");
      expect(d.get("NoNewPrivileges"), name).toBe("yes");
      expect(d.get("PrivateTmp"), name).toBe("yes");
      expect(d.get("ProtectHome"), name).toBe("yes");
      expect(d.get("CapabilityBoundingSet"), name).toBe("");
      expect(d.get("SystemCallFilter"), name).toBe("@system-service");
      expect(d.get("ReadWritePaths"), name).toBe(name === "edged-precheck.service" ? `${r.stateRoot} -${r.runtimeDir}` : r.stateRoot);
      expect(d.get("RestrictAddressFamilies"), name).toBe(name === "edged-precheck.service" ? "AF_UNIX" : "AF_UNIX AF_INET AF_INET6");
    }
  });

  it("order edged and the runtime after a successful precheck (oneshot), so a failed reconstruction keeps them down", async () => {
    const r = await render(join(work, "order"));
    const pre = directives(await readFile(join(r.dir, "edged-precheck.service"), "utf8"));
    expect(pre.get("Type")).toBe("oneshot");
    expect(pre.get("RemainAfterExit")).toBe("yes");
    expect(pre.get("ExecStart")).toBe(`${r.prefix}/bin/edged --config ${r.stateRoot}/bootstrap/edge.toml precheck`);
    // After an OS replacement the install dir is gone: created unsandboxed before the sandboxed precheck runs.
    expect(pre.get("ExecStartPre")).toBe(`+/bin/mkdir -p -m 0755 ${r.runtimeDir}`);
    for (const name of ["edged.service", "autonomy-runtime.service"]) {
      const d = directives(await readFile(join(r.dir, name), "utf8"));
      expect(d.get("Requires"), name).toBe("edged-precheck.service");
      expect(d.get("After")?.split(" "), name).toContain("edged-precheck.service");
    }
  });
});
