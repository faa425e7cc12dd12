// The edge daemon domain (edged): config, segment store, relay (ledger, executor, transport, bandwidth),
// release relay, bootstrap (OS fingerprint, precheck, reconstruction), and the daemon with its control socket.
// Above node and runtime (it builds on the node's state root and the runtime's release activation).
export type {
  SegmentId, SegmentKind, SegmentInfo, EvictionReason, EvictionRecord, StoreUsage, StoreVerifyReport, SegmentStore,
  BandwidthConfig, BandwidthSnapshot, BandwidthLimiter, PeerConfig, PeerIdentity, PushResult, PeerTransport,
  RefusedPeer, SegmentSink, DeliveryState, SuccessCondition,
} from "./types.js";
export { SEGMENT_ID_RE, DELIVERY_STATES } from "./types.js";
export { EdgeError, EDGE_ERROR_CODES, RELAY_FAILURE_CODES } from "./errors.js";
export type { EdgeErrorCode } from "./errors.js";
export { edgeFileSchema, CONFIG_VERSION, EDGE_DEFAULTS } from "./config/schema.js";
export type { EdgeFile, EdgeConfig } from "./config/schema.js";
// relay transport (helper T): HTTP/2 over mutual TLS
export { startRelayReceiver } from "./relay/transport/receiver.js";
export type { RelayReceiver, RelayReceiverOptions, TlsMaterial, PeerList } from "./relay/transport/receiver.js";
export { createPeerTransport } from "./relay/transport/client.js";
export type { PeerTransportOptions, RelayPeerTransport } from "./relay/transport/client.js";
// config loader (P)
export { loadEdgeConfig, parseEdgeConfig, MAX_EDGE_CONFIG_BYTES } from "./config/load.js";
export { planMigration, migrateEdgeConfigFile } from "./config/migrate.js";
export type { MigrationChange, MigrationPlan, MigrationResult, MigrateOptions } from "./config/migrate.js";
// segment store (S)
export { STORE_BLOCK_BYTES, SegmentAssembler, diskCost, openSegmentStore, segmentIdOf } from "./storage/index.js";
export type { SegmentStoreOptions } from "./storage/index.js";
// bandwidth (S)
export { createBandwidthLimiter, checkBandwidthConfig } from "./relay/bandwidth.js";
export type { BandwidthLimiterOptions, Sleep } from "./relay/bandwidth.js";
// bootstrap (helper B): OS identity + fingerprint, precheck, runtime staging, reconstruction, boot epoch, evidence
export { readOsIdentity, parseOsRelease, identityPayload, osFingerprint } from "./bootstrap/identity.js";
export type { OsIdentity } from "./bootstrap/identity.js";
export { readBootState, readBootFile, readEvidence } from "./bootstrap/boot-state.js";
export type { BootState, BootFile, EpochEvidence } from "./bootstrap/boot-state.js";
export { runPrecheck, PRECHECK_EXIT } from "./bootstrap/precheck.js";
export type { PrecheckResult, PrecheckCheck, PrecheckOptions, PrecheckOutcome, PrecheckExitCode } from "./bootstrap/precheck.js";
export { RUNTIME_MANIFEST_TYPE, signRuntimeManifest, verifyRuntimeEnvelope, isSafeRelativePath } from "./bootstrap/manifest.js";
export type { RuntimeManifest, VerifiedRuntime } from "./bootstrap/manifest.js";
export { stageRuntime, stagedRuntimePaths } from "./bootstrap/stage.js";
export type { StageResult } from "./bootstrap/stage.js";
export type { ReconstructionHooks } from "./bootstrap/reconstruct.js";
// relay ledger + executor (L)
export { openRelayLedger, RelayLedger } from "./relay/ledger.js";
export type { InboxEntry, PurgeResult, PurgedDelivery, PurgeLogEntry, PurgeFilter, LedgerSummary, LedgerOptions } from "./relay/ledger.js";
export type { DeliveryRecord, SegmentRecord, AttemptRecord, RelayErrorInfo } from "./relay/ledger-records.js";
export { ledgerSink, peerShareOf } from "./relay/inbox-sink.js";
export type { LedgerSinkOptions } from "./relay/inbox-sink.js";
export { RelayExecutor, classifyFailure } from "./relay/executor.js";
export type { RelayExecutorOptions, RelayExecutorConfig, RelayStatus, RelayStats, PeerStatus, RelayLog } from "./relay/executor.js";
export { backoffDelay } from "./relay/backoff.js";
export type { BackoffConfig } from "./relay/backoff.js";
// daemon (helper D): control socket, its client, the composition root
export { ControlClient } from "./daemon/ctl-client.js";
export { readBootStatus } from "./daemon/boot-status.js";
export type { BootStatusView, ReconstructionView } from "./daemon/boot-status.js";
export { parseMetricsAddress } from "./daemon/prometheus.js";
export type { MetricsAddress } from "./daemon/prometheus.js";
export { trustedSocketPath, resolveSocketOwner } from "./daemon/socket-trust.js";
export type { SocketTrust } from "./daemon/socket-trust.js";
export type { ControlClientOptions } from "./daemon/ctl-client.js";
export { createControlServer } from "./daemon/control-server.js";
export { listenControlSocket, DEFAULT_CONTROL_SOCKET } from "./daemon/control-socket.js";
export type {
  RelayControl, RelayStatusView, RelayConfigView, QueueCounts, PeerStatusView, RelayErrorView, StoreStatus, ConfigState, BandwidthChange, BandwidthApplied,
  DeadLetterEntry, DeadLetterDetail, DeadLetterRetried, DeliveryAttempt, PurgeRequest, DeadLetterPurgeResult,
} from "./daemon/control-types.js";
export { startEdgeDaemon } from "./daemon/daemon.js";
export type { EdgeDaemon, EdgeDaemonOptions } from "./daemon/daemon.js";
export { untilStopped } from "./daemon/signals.js";
export type { RelayEngine, RelayParts, RelayPartsFactory, EdgeConfigLoader, EngineQueue, EngineStats, PartsContext } from "./daemon/ports.js";
export { startReleaseHooks } from "./daemon/release-hooks.js";
export { openRelayParts } from "./daemon/relay-parts.js";
export type { InboxArrival, RelayInbox, ReleaseRelay, ReleaseHooksOptions } from "./daemon/release-hooks.js";
export { startInboxConsumer, MAX_APPLY_ATTEMPTS } from "./daemon/relay-inbox.js";
export type { InboxApplier, InboxConsumer, InboxConsumerOptions, InboxRejectionLog } from "./daemon/relay-inbox.js";
export type { InboxRejection, InboxRejectionCount, SettleLogEntry, SettledDelivery } from "./relay/ledger.js";
// release relay (R)
export { packActiveRelease, activateRelayedRelease, describeRelayedRelease, relayedReleaseLimits, watchActiveRelease } from "./release-relay.js";
export type { RelayedReleaseClaim, PackedRelease, PackOptions, ActivateRelayedOptions, ActiveReleaseWatch, ActiveReleaseWatchOptions } from "./release-relay.js";
