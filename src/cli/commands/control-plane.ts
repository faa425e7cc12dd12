import { InvalidArgumentError, Option } from "commander";
import type { Command } from "commander";
import { ROLES } from "../../cpapi/index.js";
import type { CpClient, Release, Role } from "../../cpapi/index.js";
import { ExitCodes, UsageError, readInputFile, redactUrl } from "../../lib/index.js";
import { createLogger } from "../../observability/index.js";
import { isPostgresLocation, startControlPlane } from "../../orchestrator/index.js";
import { loadPublicKey, parseDuration } from "../../sign/index.js";
import { DEFAULT_CHANNEL, releaseRepository, trustedKeys, verifyRelease } from "../../supplychain/index.js";
import { emit } from "../output.js";
import { action, exitAfter } from "../run.js";
import { openRef, operatorClient, withServerFlags } from "../common.js";
import type { ServerFlags } from "../common.js";

/** `HOST:PORT` (port 0: a free one). */
function parseHostPort(v: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(v);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw new InvalidArgumentError("expected HOST:PORT (e.g. 127.0.0.1:8888)");
  return { host: m[1]?.replace(/^\[|\]$/g, "") ?? "", port };
}

interface ServeFlags {
  db: string;
  listen: { host: string; port: number };
  bootstrapTokenFile?: string;
  releaseKey?: string[];
  releaseThreshold?: number;
  tlsCert?: string;
  tlsKey?: string;
  insecureListen?: boolean;
  schedulerInterval?: string;
  exitWithStdin?: boolean;
  json?: boolean;
}

/** How long a server whose supervisor is gone (stdin EOF) may take to close before it just exits. */
const ORPHAN_CLOSE_MS = 2000;

/**
 * Resolves when stdin reaches end of file: the supervising process that holds the other end of
 * the pipe is gone (even by SIGKILL, which runs no handler of its own; the kernel closes its end).
 */
function stdinClosed(): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => resolve();
    process.stdin.once("end", done);
    process.stdin.once("close", done);
    process.stdin.once("error", done);
    process.stdin.resume();
  });
}

/** Serves until SIGINT/SIGTERM (or stdin EOF with --exit-with-stdin), then closes gracefully (in-flight requests finish, the store is closed). */
async function serve(flags: ServeFlags): Promise<void> {
  try {
    await serveUntilStopped(flags);
  } finally {
    // A watched stdin is an open handle: released on every way out (a store that cannot open too), or the process would never exit.
    if (flags.exitWithStdin === true) process.stdin.destroy();
  }
}

async function serveUntilStopped(flags: ServeFlags): Promise<void> {
  const say = (line: string): void => void process.stderr.write(`${line}\n`);
  const log = createLogger({ name: "autonomy.cp", level: "info" });
  // Watched from the start: a supervisor that dies while the store is still opening must not leave an orphan either.
  const orphaned = flags.exitWithStdin === true ? stdinClosed() : new Promise<void>(() => undefined);
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) throw new UsageError("--tls-cert and --tls-key come together", "pass both (a PEM certificate and its private key), or neither to serve plain HTTP on loopback");
  const cp = await startControlPlane({
    db: flags.db,
    ...flags.listen,
    ...(flags.tlsCert !== undefined && flags.tlsKey !== undefined ? { tls: { cert: flags.tlsCert, key: flags.tlsKey } } : {}),
    insecureListen: flags.insecureListen === true,
    releaseKeys: flags.releaseKey,
    releaseThreshold: flags.releaseThreshold,
    log,
    bootstrapTokenFile: flags.bootstrapTokenFile,
    ...(flags.schedulerInterval !== undefined ? { schedulerMs: schedulerIntervalMs(flags.schedulerInterval) } : {}),
    // The one time the secret is shown; never logged (the log line names the token id only).
    onBootstrapToken: (t) => say(`bootstrap owner token (shown once, it will not be shown again${flags.bootstrapTokenFile ? `; also written to ${flags.bootstrapTokenFile}` : ""}): ${t.token}`),
  });
  // Handlers first: a supervisor may signal as soon as it reads the ready line.
  const stopped = new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  const ready = { ok: true, url: cp.url, store: cp.store.dialect, db: isPostgresLocation(flags.db) ? redactUrl(flags.db) : flags.db, migrations_applied: cp.migrations.applied, bootstrapped: cp.bootstrapped };
  say(flags.json ? JSON.stringify(ready) : `control plane ready: ${cp.url} (${ready.store} ${ready.db})`);
  const why = await Promise.race([stopped.then(() => "signal" as const), orphaned.then(() => "stdin" as const)]);
  if (why === "stdin") {
    say("stdin closed (the supervising process is gone): shutting down");
    // Nobody waits for this server any more: close gracefully if that is quick, else just go.
    exitAfter(ORPHAN_CLOSE_MS, ExitCodes.failure);
  }
  await cp.close();
}

/** --scheduler-interval: a duration (500ms, 1s, 5s), at least 100 ms. */
function schedulerIntervalMs(v: string): number {
  const ms = parseDuration(v);
  if (!Number.isFinite(ms) || ms < 100) throw new UsageError(`--scheduler-interval ${v}: expected a duration of at least 100ms`, "e.g. --scheduler-interval 1s");
  return ms;
}

type ClientFlags = ServerFlags;

const TOKEN_WHY = "the bootstrap token `autonomy serve` printed, or one from `autonomy token create`";
const clientOf = (flags: ClientFlags): CpClient => operatorClient(flags, TOKEN_WHY);
const withClientFlags = (cmd: Command): Command => withServerFlags(cmd);

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("run the control plane: the HTTP API under /v1 (releases, enrollment, nodes, events, rollouts, with the rollout scheduler), /openapi.json, /healthz, /readyz, /metrics; storage in SQLite (default) or PostgreSQL, migrated at start")
    // AUTONOMY_DB: a postgres:// URL with a password passed on the command line is readable by every local user (ps, /proc/<pid>/cmdline); the environment is not.
    .addOption(new Option("--db <path-or-url>", "SQLite file (created on first start) or postgres://user:password@host:port/db; or set AUTONOMY_DB (keeps a password out of the process list; --db wins when both are given)").env("AUTONOMY_DB").default("./autonomy-cp.db"))
    .option("--listen <host:port>", "address to listen on", parseHostPort, { host: "127.0.0.1", port: 8888 })
    .option("--bootstrap-token-file <file>", "on the first start, also write the bootstrap owner token here (0600) for automation")
    .option("--release-key <file>", "release public key (SPKI PEM), repeatable: POST /v1/releases then refuses statements not signed by --release-threshold of them (422); without it the control plane is advisory and a publisher token is trusted with channel ordering", (v: string, prev: string[] = []) => [...prev, v])
    .option("--release-threshold <n>", "how many --release-key keys must have signed (default 1)", (v) => Number(v))
    .option("--tls-cert <file>", "serve HTTPS with this PEM certificate (with --tls-key); needed to listen outside loopback")
    .option("--tls-key <file>", "the PEM private key of --tls-cert")
    .option("--insecure-listen", "allow a non-loopback --listen WITHOUT TLS (tokens in clear text; only behind a TLS proxy on the same host)")
    .option("--scheduler-interval <duration>", "how often the rollout scheduler ticks every live plan (e.g. 500ms, 1s)", "1s")
    .option("--exit-with-stdin", "shut down (as on SIGTERM, at most 2 s) when stdin reaches end of file: for a supervisor that holds a pipe to it (`autonomy lab run`), so the server does not outlive the supervisor even when that is SIGKILLed")
    .option("--json", "machine-readable ready line (stderr)")
    .addHelpText("after", "\nOn a first start (no operator token in the store) an owner token is printed ONCE on stderr. Logs are JSON lines on stderr.\nSIGINT/SIGTERM stop accepting, finish in-flight requests and close the store.")
    .action(action(serve));
}

interface TokenCreateFlags extends ClientFlags {
  role: Role;
  name: string;
  ttl?: string;
}

export function registerToken(program: Command): void {
  const token = program.command("token").description("operator tokens of a control plane");
  withClientFlags(
    token
      .command("create")
      .description("create an operator token (the secret is printed once; the server keeps its SHA-256)")
      .requiredOption("--role <role>", `one of ${ROLES.join(", ")}`, (v: string): Role => {
        if (!(ROLES as readonly string[]).includes(v)) throw new InvalidArgumentError(`expected one of ${ROLES.join(", ")}`);
        return v as Role;
      })
      .requiredOption("--name <name>", "who or what the token is for (shown in lists, not secret)")
      .option("--ttl <duration>", "lifetime, e.g. 30d, 12h (default: does not expire)"),
  ).action(action(async (flags: TokenCreateFlags) => {
    const ttlMs = flags.ttl === undefined ? undefined : parseDuration(flags.ttl);
    if (ttlMs !== undefined && ttlMs < 60_000) throw new UsageError("--ttl must be at least 1m", "e.g. --ttl 30d");
    const created = await clientOf(flags).createToken({ role: flags.role, name: flags.name, ...(ttlMs !== undefined ? { ttl_seconds: Math.floor(ttlMs / 1000) } : {}) });
    emit({ ok: true, ...created }, flags, (c) => `${c.token}\n(token ${c.token_id}, role ${c.role}, ${c.expires_at ? `expires ${c.expires_at}` : "does not expire"}; shown once)`);
  }));
  withClientFlags(token.command("list").description("list the operator tokens (ids, names, roles, expiry, revocation; never the secrets)")).action(
    action(async (flags: ClientFlags) => {
      const { tokens } = await clientOf(flags).listTokens();
      emit({ ok: true, tokens }, flags, (x) =>
        x.tokens.map((t) => `${t.token_id}  ${t.role}  ${t.name}  created ${t.created_at}${t.expires_at ? `  expires ${t.expires_at}` : ""}${t.revoked_at ? `  REVOKED ${t.revoked_at}` : ""}`).join("\n"),
      );
    }),
  );
  withClientFlags(
    token
      .command("revoke <token_id>")
      .description("revoke an operator token (401 TOKEN_REVOKED from then on: at once on the server that revoked it, within 1 s on others sharing its store)"),
  ).action(
    action(async (id: string, flags: ClientFlags) => {
      const t = await clientOf(flags).revokeToken(id);
      emit({ ok: true, token: t }, flags, (x) => `revoked token ${x.token.token_id} (${x.token.name}, ${x.token.role}) at ${x.token.revoked_at ?? "?"}`);
    }),
  );
}

function releaseLine(r: Release): string {
  const marks = [r.standby ? "STANDBY" : "", r.withdrawn_at ? `WITHDRAWN ${r.withdrawn_at}` : ""].filter((m) => m !== "");
  return `${r.release_id}  ${r.channel}  seq ${r.sequence}  ${r.image}  published ${r.published_at} by ${r.published_by}${marks.map((m) => `  ${m}`).join("")}`;
}

function releaseText(r: Release): string {
  return [
    releaseLine(r),
    `  image digest ${r.image_digest} (${r.repository})`,
    `  lock ${r.lock_digest} fingerprint ${r.lock_fingerprint}`,
    `  policy bundle ${r.bundle_digest}`,
    `  valid ${r.issued_at} → ${r.expires_at}`,
    ...(r.notes ? [`  notes: ${r.notes}`] : []),
    ...(r.standby ? ["  standby: never the channel's latest; reaches nodes only as a rollout's rollback target"] : []),
    "  advisory: nodes verify the statement, lock and bundle themselves before activating",
  ].join("\n");
}

interface PublishFlags extends ClientFlags {
  statement?: string;
  fromImage?: string;
  image?: string;
  key?: string[];
  repository?: string;
  channel?: string;
  notes: string;
  standby?: boolean;
  plainHttp?: boolean;
}

/** The envelope to publish and the image reference: from a file, or verified from the image's own statements. */
async function publishInput(flags: PublishFlags): Promise<{ envelope: unknown; image: string; channel: string | undefined }> {
  if ((flags.statement === undefined) === (flags.fromImage === undefined)) throw new UsageError("give exactly one of --statement FILE and --from-image REF", "--statement publishes an envelope file; --from-image reads and verifies the statement attached to the image");
  if (flags.statement !== undefined) {
    if (flags.image === undefined) throw new UsageError("--statement needs --image REF", "pass --image: where nodes pull the image the statement names");
    const file = await readInputFile(flags.statement, "release statement envelope");
    try {
      return { envelope: JSON.parse(file.toString("utf8")), image: flags.image, channel: flags.channel };
    } catch {
      throw new UsageError(`${flags.statement} is not JSON`, "pass the DSSE envelope of the release statement (JSON with payloadType, payload, signatures)");
    }
  }
  const refIn = flags.fromImage ?? "";
  if (!flags.key || flags.key.length === 0) throw new UsageError("--from-image needs --key PUB", "pass the release public key(s): the statement is verified here before it is published");
  const trusted = trustedKeys(await Promise.all(flags.key.map((k) => loadPublicKey(k))));
  const { repo, ref, target } = openRef(refIn, flags);
  const repository = flags.repository ?? releaseRepository(ref);
  if (repository === undefined) throw new UsageError("an oci: layout reference does not name the release repository", "pass --repository HOST/PATH");
  // Verified as a node would (highest valid statement, every digest, lock and bundle): never publish what no node can activate.
  const report = await verifyRelease(repo, target, { trusted, threshold: 1, channel: flags.channel ?? DEFAULT_CHANNEL, repository, now: new Date() });
  const envelope: unknown = JSON.parse(Buffer.from(report.statement.envelope.bytes).toString("utf8"));
  return { envelope, image: flags.image ?? refIn, channel: report.statement.predicate.channel };
}

/** `autonomy release publish|list|show`: the control plane's release records, beside `release rollback`. */
export function registerReleaseControlPlane(release: Command): void {
  withClientFlags(
    release
      .command("publish")
      .description("publish a signed release statement to a control plane (advisory: nodes still verify it); the same statement again is a no-op (with the other --standby value: refused, 409), another statement at the same channel and sequence is refused (409)")
      .option("--statement <file>", "the DSSE envelope (JSON) of the release statement (with --image)")
      .option("--from-image <ref>", "read the release statement attached to this image, verify it with --key (as a node would), and publish it")
      .option("--image <ref>", "where nodes pull the image (its digest, if given, must be the statement's; default with --from-image: that reference)")
      .option("--key <file>", "release public key (SPKI PEM) to verify --from-image with, repeatable", (v: string, prev: string[] = []) => [...prev, v])
      .option("--repository <host/path>", "with --from-image: the signed identity (default: the image's repository; required for oci: refs)")
      .option("--channel <name>", "the statement's channel (default: read from the statement)")
      .option("--notes <text>", "release notes", "")
      .option("--standby", "publish as a standby release: never the channel's latest, only a rollout's rollback target (the previous content re-signed above the plan's release with `autonomy release rollback`)")
      .option("--plain-http", "with --from-image: talk HTTP to the registry (loopback test registries)"),
  ).action(action(async (flags: PublishFlags) => {
    const input = await publishInput(flags);
    const channel = flags.channel ?? input.channel ?? channelOf(input.envelope) ?? DEFAULT_CHANNEL;
    const r = await clientOf(flags).publishRelease({ statement: input.envelope as Release["statement"], image: input.image, channel, notes: flags.notes, standby: flags.standby === true });
    emit({ ok: true, release: r }, flags, (x) => `published ${releaseLine(x.release)}`);
  }));
  withClientFlags(
    release
      .command("list")
      .description("list published releases, newest sequence first")
      .option("--channel <name>", "only this channel")
      .option("--limit <n>", "at most this many (1–1000)", (v) => Number(v), 100),
  ).action(action(async (flags: ClientFlags & { channel?: string; limit: number }) => {
    const page = await clientOf(flags).listReleases({ ...(flags.channel !== undefined ? { channel: flags.channel } : {}), limit: flags.limit });
    emit({ ok: true, releases: page.releases, next_cursor: page.next_cursor }, flags, (x) => (x.releases.length === 0 ? "no releases" : x.releases.map(releaseLine).join("\n")));
  }));
  withClientFlags(release.command("show <release_id>").description("show one published release")).action(
    action(async (id: string, flags: ClientFlags) => {
      const r = await clientOf(flags).getRelease(id);
      emit({ ok: true, release: r }, flags, (x) => releaseText(x.release));
    }),
  );
  withClientFlags(
    release
      .command("withdraw <release_id>")
      .description("withdraw a release (owner only): latest skips it and its channel sequence is free again; nodes that activated it keep it"),
  ).action(
    action(async (id: string, flags: ClientFlags) => {
      const r = await clientOf(flags).withdrawRelease(id);
      emit({ ok: true, release: r }, flags, (x) => `withdrew ${releaseLine(x.release)} at ${x.release.withdrawn_at ?? "?"}`);
    }),
  );
}

/** The channel the statement itself names, so `--channel` can be left out (the server still checks it). */
function channelOf(envelope: unknown): string | undefined {
  try {
    const payload = (envelope as { payload?: unknown }).payload;
    if (typeof payload !== "string") return undefined;
    const st = JSON.parse(Buffer.from(payload, "base64").toString("utf8")) as { predicate?: { channel?: unknown } };
    return typeof st.predicate?.channel === "string" ? st.predicate.channel : undefined;
  } catch {
    return undefined;
  }
}
