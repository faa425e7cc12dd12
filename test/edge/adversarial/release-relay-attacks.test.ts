/**
 * Adversarial review, session 3 (helper adv): release segments from a hostile
 * fleet peer (one with a valid certificate). `attack: …` tests that fail are
 * findings; the others are regression tests for attacks that held. (Other
 * roots, tampered bytes, traversal, links, devices and gzip bombs are covered
 * by test/edge/release-relay.test.ts.)
 */
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { activateRelayedRelease, ledgerSink, openRelayLedger, openSegmentStore, segmentIdOf } from "../../../src/edge/index.js";
import { tarGz } from "../../../src/archive/index.js";
import { setTrustRoot } from "../../../src/node/index.js";
import { MediaTypes } from "../../../src/oci/index.js";
import { testKeys } from "../../helpers/release.js";

const HEX = "a".repeat(64);
const MARKER = { name: "oci-layout", content: Buffer.from('{"imageLayoutVersion":"1.0.0"}') };
const INDEX = {
  name: "index.json",
  content: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: [{ mediaType: MediaTypes.imageManifest, digest: `sha256:${HEX}`, size: 2, annotations: { "org.opencontainers.image.ref.name": "seq-1" } }] })),
};

describe("adversarial review 3: release segments from a hostile fleet peer", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "adv3-release-"));
  });

  async function peer(): Promise<string> {
    const root = join(dir, "b");
    await setTrustRoot(root, { keys: [testKeys().publicPem], repository: "registry.example/prod/agent" });
    return root;
  }

  it("attack: a peer that pushes a release's bytes first with the segment kind header `data` does not stop the node from activating that release when the seed relays it as `release`", async () => {
    const ledger = await openRelayLedger(join(dir, "ledger"));
    const store = await openSegmentStore({ dir: join(dir, "segments"), ceilingBytes: 1 << 20 });
    const sink = ledgerSink(ledger, store);
    try {
      // Any bytes do: the receiver neither looks at them nor checks that the kind header matches them.
      const release = tarGz([MARKER, INDEX]).gz;
      const id = segmentIdOf(release);
      // edge-evil got the release from the seed first and races it to edge-b, labelled as plain data…
      await sink.accept({ id, size: release.length, kind: "data" }, release, { id: "edge-evil", cert_fingerprint: `sha256:${"e".repeat(64)}` });
      // … then the seed's own push arrives, labelled as a release.
      const r = await sink.accept({ id, size: release.length, kind: "release" }, release, { id: "edge-seed", cert_fingerprint: `sha256:${"5".repeat(64)}` });
      // The second push is a duplicate of the first: the inbox keeps kind `data`, so release-hooks never activates it.
      const kinds = ledger.inbox(0, 10).filter((e) => e.segment_id === id).map((e) => e.kind);
      expect(kinds, `inbox entries for the release (second push duplicate=${String(r.duplicate)})`).toContain("release");
    } finally {
      await ledger.close();
    }
  });

  // ---- held (regression tests) ----

  it("attack: a release archive of 2000 entries (an entry-count bomb) is refused (ARCHIVE_TOO_MANY_ENTRIES, exit 4) before anything is written", async () => {
    const b = await peer();
    const many = Array.from({ length: 2000 }, (_, i) => ({ name: `blobs/sha256/${i.toString(16).padStart(64, "0")}`, content: Buffer.from("x") }));
    const err = await activateRelayedRelease({ stateRoot: b, bytes: tarGz([MARKER, INDEX, ...many]).gz }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "RELAYED_RELEASE_INVALID", exitCode: 4, details: { archive_code: "ARCHIVE_TOO_MANY_ENTRIES" } });
    expect(await readdir(join(b, "edge", "incoming")).catch(() => [])).toEqual([]);
  });

  it("attack: a release archive with a 300-level deep path under blobs/ is refused by the archive reader (ARCHIVE_PATH_UNSAFE, exit 4), nothing created", async () => {
    const b = await peer();
    const deep = `blobs/sha256/${Array.from({ length: 300 }, () => "d").join("/")}/${HEX}`;
    const err = await activateRelayedRelease({ stateRoot: b, bytes: tarGz([MARKER, INDEX, { name: deep, content: Buffer.from("x") }]).gz }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "RELAYED_RELEASE_INVALID", exitCode: 4, details: { archive_code: "ARCHIVE_PATH_UNSAFE" } });
    expect(await readdir(join(b, "edge", "incoming")).catch(() => [])).toEqual([]);
  });
});
