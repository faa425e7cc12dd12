import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { ControlClient, DEFAULT_CONTROL_SOCKET, resolveSocketOwner } from "../../edge/index.js";
import type { BandwidthChange, PurgeRequest } from "../../edge/index.js";
import { UsageError, readInputFile } from "../../lib/index.js";
import { emit } from "../output.js";
import { action } from "../run.js";
import { bandwidthText, configText, deadletterDetailText, deadletterListText, purgeText, statusText } from "./edgectl-render.js";

interface Flags {
  socket?: string;
  socketOwner?: string;
  json?: boolean;
}

function nonNegInt(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("must be a non-negative integer");
  return n;
}

function posInt(v: string): number {
  const n = nonNegInt(v);
  if (n === 0) throw new InvalidArgumentError("must be at least 1");
  return n;
}

function hhmm(v: string): string {
  if (!/^([01][0-9]|2[0-3]):[0-5][0-9]$/.test(v)) throw new InvalidArgumentError("must be HH:MM (UTC), e.g. 00:00");
  return v;
}

function segmentId(v: string): string {
  if (!/^[0-9a-f]{64}$/.test(v)) throw new InvalidArgumentError("must be a segment id (64 lowercase hex characters)");
  return v;
}

/** The client for the socket named by the persistent --socket flag (trusting --socket-owner besides you and root). */
async function client(cmd: Command): Promise<{ ctl: ControlClient; flags: Flags }> {
  const flags = cmd.optsWithGlobals<Flags>();
  const owners: number[] = [];
  if (flags.socketOwner !== undefined) {
    const uid = await resolveSocketOwner(flags.socketOwner);
    if (uid === undefined) throw new UsageError(`--socket-owner ${flags.socketOwner}: no such user`, "pass a user name from /etc/passwd or a numeric uid");
    owners.push(uid);
  }
  return { ctl: new ControlClient({ socketPath: flags.socket ?? DEFAULT_CONTROL_SOCKET, socketOwners: owners }), flags };
}

const json = (c: Command): Command => c.option("--json", "machine-readable output");

/** `edgectl relay …`: status, config, dead letters and sending, over edged's control socket. */
export function registerEdgectlRelay(program: Command): void {
  const relay = program.command("relay").description("the segment relay of the edged behind --socket");

  json(relay.command("status").description("queue per state and per peer, bandwidth, last error, refused peers, store usage, the boot epoch and last OS reconstruction (\"relay: disabled\" when off)"))
    .addOption(new Option("--output <format>", "text or json (as the original spells it; same as --json)").choices(["text", "json"]).default("text"))
    // --output json is --json, also for a failure (the error document on stdout).
    .hook("preAction", (c) => {
      if (c.opts<{ output?: string }>().output === "json") c.setOptionValue("json", true);
    })
    .action(action(async (opts: { output: string; json?: boolean }, cmd: Command) => {
      const { ctl } = await client(cmd);
      emit(await ctl.status(), { json: opts.json === true }, statusText);
    }));

  const config = relay.command("config").description("the running relay configuration");
  json(config.command("get").description("print the running relay configuration (and a failed reload's error)"))
    .action(action(async (_opts: Flags, cmd: Command) => {
      const { ctl, flags } = await client(cmd);
      emit(await ctl.config(), flags, configText);
    }));
  json(config.command("set-bandwidth").description("change the rate and/or the daily quota at once, without restart (edge.toml is not rewritten)"))
    .option("--bytes-per-second <n>", "token-bucket rate for outbound relay bytes; 0 = unlimited", nonNegInt)
    .option("--daily-quota-bytes <n>", "bytes per day; 0 = unlimited", nonNegInt)
    .option("--quota-reset-utc <HH:MM>", "when the daily quota resets (UTC)", hhmm)
    .action(action(async (opts: { bytesPerSecond?: number; dailyQuotaBytes?: number; quotaResetUtc?: string }, cmd: Command) => {
      const change: BandwidthChange = {
        ...(opts.bytesPerSecond === undefined ? {} : { bytes_per_second: opts.bytesPerSecond }),
        ...(opts.dailyQuotaBytes === undefined ? {} : { daily_quota_bytes: opts.dailyQuotaBytes }),
        ...(opts.quotaResetUtc === undefined ? {} : { quota_reset_utc: opts.quotaResetUtc }),
      };
      if (Object.keys(change).length === 0) throw new UsageError("nothing to change", "pass --bytes-per-second, --daily-quota-bytes and/or --quota-reset-utc");
      const { ctl, flags } = await client(cmd);
      emit(await ctl.setBandwidth(change), flags, (r) =>
        `applied=${String(r.applied)}  ${bandwidthText(r.bandwidth)} (not written to edge.toml)`);
    }));

  const dl = relay.command("deadletter").description("deliveries that exhausted their retries: list, inspect, retry, purge");
  json(dl.command("list").description("list dead letters (segment, peer, attempts, last error)"))
    .option("--limit <n>", "at most this many", posInt, 50)
    .action(action(async (opts: { limit: number }, cmd: Command) => {
      const { ctl, flags } = await client(cmd);
      emit({ deadletters: await ctl.deadletterList(opts.limit) }, flags, (r) => deadletterListText(r.deadletters));
    }));
  json(dl.command("inspect").description("one delivery's state, attempts and their errors").argument("<seg>", "segment id", segmentId).argument("<peer>", "peer id"))
    .action(action(async (seg: string, peer: string, _opts: Flags, cmd: Command) => {
      const { ctl, flags } = await client(cmd);
      emit(await ctl.deadletterInspect(seg, peer), flags, deadletterDetailText);
    }));
  json(dl.command("retry").description("schedule a dead letter for delivery again").argument("<seg>", "segment id", segmentId).argument("<peer>", "peer id"))
    .action(action(async (seg: string, peer: string, _opts: Flags, cmd: Command) => {
      const { ctl, flags } = await client(cmd);
      emit(await ctl.deadletterRetry(seg, peer), flags, (r) => `segment ${r.segment_id} → peer ${r.peer_id}: ${r.state}`);
    }));
  json(dl.command("purge").description("remove dead letters (all, or those of one segment and/or peer); a dry run without --force"))
    .option("--segment-id <seg>", "only this segment", segmentId)
    .option("--peer-id <peer>", "only this peer")
    .option("--force", "really purge (otherwise only show what would be purged)")
    .action(action(async (opts: { segmentId?: string; peerId?: string; force?: boolean }, cmd: Command) => {
      const req: PurgeRequest = { force: opts.force === true, ...(opts.segmentId ? { segment_id: opts.segmentId } : {}), ...(opts.peerId ? { peer_id: opts.peerId } : {}) };
      const { ctl, flags } = await client(cmd);
      emit(await ctl.deadletterPurge(req), flags, purgeText);
    }));

  json(relay.command("send").description("store a file as a segment and relay it to every peer").argument("<file>", "the bytes to relay"))
    .addOption(new Option("--kind <kind>", "what the segment carries").choices(["data", "release"]).default("data"))
    .action(action(async (file: string, opts: { kind: "data" | "release" }, cmd: Command) => {
      const bytes = await readInputFile(file, "segment to send");
      const { ctl, flags } = await client(cmd);
      emit(await ctl.enqueue(bytes, opts.kind), flags, (r) => `${r.created ? "queued" : "already stored"} segment ${r.id} (${r.kind}, ${r.size} bytes)`);
    }));
}
