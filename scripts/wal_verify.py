#!/usr/bin/env python3
"""Independent verifier of a telemetry WAL directory (seed 001 format).

Writes seed 002's wal_verify.json for one WAL directory. Python 3 standard
library only, and written from the seeds and docs/wal.md, sharing no code with
src/telemetry: `autonomy lab portability` step 3 runs it beside its own
`inspect` and fails when the two disagree.

Layouts understood:
  seed-exact   telemetry.wal + telemetry.safe_seq (what any seed-001
               implementation writes; `segment_bytes = 0`)
  segmented    the default bounded-disk extension of docs/wal.md: sealed
               segments telemetry.wal.<first>-<last>[.<sha256>] (20 digits
               each, chained from telemetry.wal.base + 1) before the active
               telemetry.wal; telemetry.wal.base (8-byte LE seq + first 8 bytes of its
               SHA-256; a legacy 8-byte file is unchecked) missing = 0

A legacy upgrade (seed OBS-4) accepts gaps in the legacy WAL and records them
beside the directory (<dir>.generation, "legacy_through" and "legacy_gaps", the
(after, seq) pairs it accepted); exactly those gaps are not violations here
either, any other gap is. <dir> is the directory's real path (symlinks resolved).

Checks (seed 002 invariants; the first violation of each is its msg):
  R1_FIRST_SEQ_IS_ONE      first retained frame has seq base + 1 (1 without segments)
  R2_SEQ_CONTIGUOUS        seqs contiguous in the committed range; sealed segments
                           hold exactly the seqs their names say
  R3_SAFESEQ_LE_MAXSEQ     safe_seq <= max seq; safe_seq is 8 bytes
  R4_SAFESEQ_FRAME_EXISTS  a frame with seq == safe_seq exists (safe_seq > base)
  R5_NO_PHANTOMS           no complete frame beyond safe_seq; no sealed frame beyond it
  NO_JSON_CORRUPTION       every committed frame is a JSON object {"seq": int, "event": object};
                           sealed segments match the SHA-256 in their names

Exit status: 0 pass, 5 a fail-hard cause (recovery would refuse the WAL),
1 any other failure (e.g. phantoms only), 2 usage.
"""

import argparse
import datetime
import hashlib
import json
import os
import re
import struct
import sys

FRAME_HEADER = 4
MAX_FRAME = 16 * 1024 * 1024
MAX_SAFE_INT = 2**53 - 1
INVARIANTS = [
    "R1_FIRST_SEQ_IS_ONE",
    "R2_SEQ_CONTIGUOUS",
    "R3_SAFESEQ_LE_MAXSEQ",
    "R4_SAFESEQ_FRAME_EXISTS",
    "R5_NO_PHANTOMS",
    "NO_JSON_CORRUPTION",
]
SEGMENT = re.compile(r"^telemetry\.wal\.(\d{20})-(\d{20})(?:\.([0-9a-f]{64}))?$")


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def u64le(raw):
    """8-byte little-endian uint64 (safe_seq, base); None for any other length or beyond 2^53."""
    if raw is None or len(raw) != 8:
        return None
    (v,) = struct.unpack("<Q", raw)
    return v if v <= MAX_SAFE_INT else None


def read_base(raw):
    """telemetry.wal.base: 16 bytes (u64 LE seq, then the first 8 bytes of that field's SHA-256), or the
    legacy 8-byte seq alone. None when the length or the check is wrong."""
    if len(raw) == 16:
        if hashlib.sha256(raw[:8]).digest()[:8] != raw[8:]:
            return None
        return u64le(raw[:8])
    return u64le(raw)


def _no_constants(name):
    raise ValueError("not JSON: " + name)


def decode_entry(payload):
    """The frame's seq when the payload is a JSON object with an integer seq >= 0 and an object event; else None."""
    try:
        text = payload.decode("utf-8", errors="strict")
        if text.startswith("\ufeff"):
            text = text[1:]
        doc = json.loads(text, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    seq, event = doc.get("seq"), doc.get("event")
    if isinstance(seq, bool) or not isinstance(seq, (int, float)):
        return None
    if isinstance(seq, float) and not seq.is_integer():
        return None
    if not 0 <= seq <= MAX_SAFE_INT or not isinstance(event, dict):
        return None
    return int(seq)


def walk(data):
    """Complete frames by their length headers: [(seq or None, offset, length)], end of the last complete frame."""
    frames, pos = [], 0
    while pos + FRAME_HEADER <= len(data):
        (n,) = struct.unpack(">I", data[pos:pos + FRAME_HEADER])
        if n > MAX_FRAME or pos + FRAME_HEADER + n > len(data):
            break
        frames.append((decode_entry(data[pos + FRAME_HEADER:pos + FRAME_HEADER + n]), pos, n))
        pos += FRAME_HEADER + n
    return frames, pos


def layout(wal_dir, violations):
    """base and the retained sealed segments, chained by name. A broken chain is reported, and then only the
    active file is inspected, as if base were 0 (what `autonomy wal inspect` does too)."""
    base_raw = read_bytes(os.path.join(wal_dir, "telemetry.wal.base"))
    base = 0
    if base_raw is not None:
        base = read_base(base_raw)
        if base is None:
            violations.append(v("WAL_BASE_CORRUPT", "R2_SEQ_CONTIGUOUS", "telemetry.wal.base is %d bytes and not a valid base record" % len(base_raw)))
            return 0, []
    segs = []
    for name in os.listdir(wal_dir) if os.path.isdir(wal_dir) else []:
        m = SEGMENT.match(name)
        if m and int(m.group(1)) <= MAX_SAFE_INT and int(m.group(2)) <= MAX_SAFE_INT:
            segs.append({"name": name, "first": int(m.group(1)), "last": int(m.group(2)), "sha256": m.group(3)})
    retained = sorted((s for s in segs if s["last"] > base), key=lambda s: s["first"])
    expected = base + 1
    for i, s in enumerate(retained):
        if s["last"] < s["first"]:
            violations.append(v("SEGMENT_INVALID", "R2_SEQ_CONTIGUOUS", "%s names an empty range" % s["name"]))
            return 0, []
        if s["first"] != expected:
            if i == 0:
                violations.append(v("FIRST_SEQ_NOT_ONE", "R1_FIRST_SEQ_IS_ONE", "the first retained frame is seq %d (%s); base %d says %d" % (s["first"], s["name"], base, expected)))
            else:
                violations.append(v("SEQ_GAP", "R2_SEQ_CONTIGUOUS", "%s starts at %d but the previous segment ends at %d" % (s["name"], s["first"], expected - 1)))
            return 0, []
        expected = s["last"] + 1
    return base, retained


def is_int(x):
    return not isinstance(x, bool) and isinstance(x, (int, float)) and float(x).is_integer() and abs(x) <= MAX_SAFE_INT


def legacy_gaps(wal_dir, violations):
    """The gaps a legacy upgrade accepted (seed OBS-4): (through, {(after, seq)}). The record lives beside the
    directory's real path, in <dir>.generation (JSON); missing = (0, none). A record that is not valid fails,
    as recovery does. Entries of "legacy_gaps" that are not {after, seq} integer pairs are ignored."""
    path = os.path.realpath(wal_dir).rstrip(os.sep) + ".generation"
    raw = read_bytes(path)
    if raw is None:
        return 0, set()
    try:
        doc = json.loads(raw.decode("utf-8", errors="replace"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        doc = None
    ok = isinstance(doc, dict) and isinstance(doc.get("generation"), str) and re.fullmatch(r"[0-9a-f]{32}", doc["generation"]) is not None
    through = doc.get("legacy_through", 0) if ok else 0
    if ok and "legacy_through" in doc:
        ok = not isinstance(through, bool) and isinstance(through, (int, float)) and float(through).is_integer() and 0 <= through <= MAX_SAFE_INT
    if not ok:
        violations.append(v("WAL_GENERATION_CORRUPT", "R2_SEQ_CONTIGUOUS", "%s is not a generation record" % path))
        return 0, set()
    gaps = doc.get("legacy_gaps", []) if "legacy_through" in doc else []
    pairs = set()
    for g in gaps if isinstance(gaps, list) else []:
        if isinstance(g, dict) and is_int(g.get("after")) and is_int(g.get("seq")):
            pairs.add((int(g["after"]), int(g["seq"])))
    return int(through), pairs


def gap_accepted(legacy, after, seq):
    """Seq `seq` may follow `after` only as a gap the legacy upgrade recorded."""
    through, pairs = legacy
    return seq <= through and (after, seq) in pairs


def starts_at(seq, first, legacy):
    """A file's first seq: exactly `first`, or a recorded legacy gap after first - 1."""
    return seq == first or (seq is not None and seq > first and gap_accepted(legacy, first - 1, seq))


def v(code, invariant, msg):
    return {"code": code, "invariant": invariant, "msg": msg}


def verify(wal_dir):
    """The inspection of one WAL directory: frames, safe point, violations, fail-hard cause."""
    violations = []
    safe_raw = read_bytes(os.path.join(wal_dir, "telemetry.safe_seq"))
    base, retained = layout(wal_dir, violations)
    legacy = legacy_gaps(wal_dir, violations)
    frames, segment_violations, total_bytes, torn = [], [], 0, 0
    for s in retained:
        data = read_bytes(os.path.join(wal_dir, s["name"])) or b""
        total_bytes += len(data)
        fs, end = walk(data)
        frames.extend(fs)
        if all(f[0] is not None for f in fs):
            if end == len(data) and s["sha256"] and hashlib.sha256(data).hexdigest() != s["sha256"]:
                segment_violations.append(v("SEGMENT_INVALID", "NO_JSON_CORRUPTION", "%s: its bytes do not match the SHA-256 in its name" % s["name"]))
            elif end != len(data) or not fs or not starts_at(fs[0][0], s["first"], legacy) or fs[-1][0] != s["last"]:
                segment_violations.append(v("SEGMENT_INVALID", "R2_SEQ_CONTIGUOUS", "%s does not hold exactly seqs %d..%d (%d frames in %d of %d bytes)" % (s["name"], s["first"], s["last"], len(fs), end, len(data))))
    active = read_bytes(os.path.join(wal_dir, "telemetry.wal")) or b""
    total_bytes += len(active)
    fs, end = walk(active)
    frames.extend(fs)
    torn = len(active) - end

    safe = u64le(safe_raw)
    status = "missing" if safe_raw is None else ("corrupt" if safe is None else "ok")
    first = base + 1
    at_safe = next((i for i, f in enumerate(frames) if f[0] == safe), None) if legacy[0] > 0 and safe is not None else None
    limit = len(frames) if safe is None else (at_safe + 1 if at_safe is not None else max(0, safe - base))
    committed = frames[:limit]
    bad = next((i for i, f in enumerate(committed) if f[0] is None), None)
    if bad is None:
        violations.extend(segment_violations)
    else:
        violations.append(v("WAL_CORRUPT_INVALID_JSON", "NO_JSON_CORRUPTION", "committed frame %d at byte %d is not a valid entry" % (bad + first, committed[bad][1])))
    seqs = [f[0] for f in committed]
    if seqs and not starts_at(seqs[0], first, legacy):
        violations.append(v("FIRST_SEQ_NOT_ONE", "R1_FIRST_SEQ_IS_ONE", "first frame has seq %s, expected %d" % (seqs[0], first)))
    for i in range(1, len(seqs)):
        if seqs[i] is not None and seqs[i - 1] is not None and seqs[i] != seqs[i - 1] + 1 and not gap_accepted(legacy, seqs[i - 1], seqs[i]):
            violations.append(v("SEQ_GAP", "R2_SEQ_CONTIGUOUS", "seq %d follows %d" % (seqs[i], seqs[i - 1])))
            break
    max_seq = max([base] + [f[0] or 0 for f in frames])
    if safe is not None:
        if safe > base and max_seq > base and safe > max_seq:
            violations.append(v("SAFESEQ_GT_MAXSEQ", "R3_SAFESEQ_LE_MAXSEQ", "safe_seq=%d > maxSeq=%d" % (safe, max_seq)))
        if safe > base and not any(f[0] == safe for f in frames):
            violations.append(v("SAFESEQ_NOT_FOUND", "R4_SAFESEQ_FRAME_EXISTS", "no frame with seq %d" % safe))
        if safe < base:
            violations.append(v("SEGMENT_INVALID", "R4_SAFESEQ_FRAME_EXISTS", "safe_seq=%d is below the reclaimed base %d" % (safe, base)))
        sealed_end = max([base] + [s["last"] for s in retained])
        if base <= safe < sealed_end:
            violations.append(v("SEGMENT_INVALID", "R5_NO_PHANTOMS", "sealed segments reach seq %d, beyond safe_seq=%d" % (sealed_end, safe)))
        phantoms = len(frames) - min(len(frames), limit)
        if phantoms > 0:
            violations.append(v("PHANTOM_BEYOND_SAFESEQ", "R5_NO_PHANTOMS", "%d frame(s) beyond safe_seq=%d; recovery discards them" % (phantoms, safe)))
    if status == "corrupt":
        violations.append(v("SAFESEQ_CORRUPT", "R3_SAFESEQ_LE_MAXSEQ", "telemetry.safe_seq is %d bytes, not 8" % len(safe_raw)))

    invariants = {}
    for inv in INVARIANTS:
        hit = next((x for x in violations if x["invariant"] == inv), None)
        invariants[inv] = {"pass": hit is None, "msg": "ok" if hit is None else hit["msg"]}
    hard = next((x["code"] for x in violations if x["code"] != "PHANTOM_BEYOND_SAFESEQ"), None)
    return {
        "layout": "segmented" if retained or base > 0 else "seed-exact",
        "invariants": invariants,
        "violations": violations,
        "fail_hard": hard,
        "wal": {"frames": len(frames), "safe_seq": safe, "max_seq": max_seq, "bytes": total_bytes, "torn_tail_bytes": torn, "base": base, "segments": [s["name"] for s in retained]},
    }


def main(argv):
    p = argparse.ArgumentParser(description="Verify a telemetry WAL directory (seed 001) and write seed 002's wal_verify.json.")
    p.add_argument("--dir", required=True, help="the WAL directory")
    p.add_argument("--out", help="where to write wal_verify.json (default: stdout only)")
    p.add_argument("--arch", default="unknown")
    p.add_argument("--fs", default="unknown")
    p.add_argument("--run", type=int, default=1)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args(argv)
    if not os.path.isdir(a.dir):
        print("wal_verify.py: %s is not a directory" % a.dir, file=sys.stderr)
        return 2
    r = verify(a.dir)
    report = {
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": a.seed,
        "arch": a.arch,
        "fs_type": a.fs,
        "total_iterations": 0,
        "passed": 0,
        "failed": 0,
        "pass": not r["violations"],
        "rename_atomic": "NOT_RUN",
        "run_n": a.run,
        "invariants": r["invariants"],
        "violations": r["violations"],
        "iterations": [],
        "verifier": "scripts/wal_verify.py",
        "layout": r["layout"],
        "fail_hard": r["fail_hard"],
        "wal": r["wal"],
    }
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    if a.out:
        tmp = a.out + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, a.out)
    sys.stdout.write(text)
    return 0 if report["pass"] else (5 if r["fail_hard"] else 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
