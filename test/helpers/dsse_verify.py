#!/usr/bin/python3
"""Independent verifier of a release statement, written against Debian bookworm's
python3-securesystemslib 0.26 (no DSSE module there, so PAE is computed here, per
the DSSE v1 spec) and nothing of ours.

usage: dsse_verify.py ENVELOPE.json THRESHOLD IMAGE_DIGEST PUB.pem [PUB.pem ...]
Prints the verified statement's predicate as JSON and exits 0, or prints why and exits 1.
"""
import base64, binascii, json, re, sys
from securesystemslib import keys
from securesystemslib.signer import SSlibKey, Signature
from securesystemslib.exceptions import UnverifiedSignatureError, VerificationError

def b64(s):
    # DSSE: standard or URL-safe, padded or not; refuse junk characters.
    if not re.fullmatch(r"[A-Za-z0-9+/_-]*={0,2}", s):
        raise ValueError("not base64")
    s = s.replace("-", "+").replace("_", "/")
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=True)

def main():
    env_path, threshold, image_digest, pubs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    env = json.load(open(env_path))
    body = b64(env["payload"])
    ptype = env["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(body), body)
    trusted = [SSlibKey.from_securesystemslib_key(keys.import_ecdsakey_from_public_pem(open(p).read())) for p in pubs]
    valid = set()
    for sig in env["signatures"]:
        der = b64(sig["sig"])
        for key in trusted:
            try:
                key.verify_signature(Signature(key.keyid, binascii.hexlify(der).decode()), pae)
                valid.add(key.keyid)
            except (UnverifiedSignatureError, VerificationError):
                pass
    if len(valid) < threshold:
        print(f"FAIL: {len(valid)} of {threshold} trusted keys signed")
        return 1
    if env["payloadType"] != "application/vnd.in-toto+json":
        print("FAIL: payloadType " + env["payloadType"])
        return 1
    st = json.loads(body)
    if st.get("_type") != "https://in-toto.io/Statement/v1" or st.get("predicateType") != "https://autonomyops.dev/release/v1":
        print("FAIL: not a release statement")
        return 1
    hexd = image_digest.split(":", 1)[1]
    if not any(s.get("digest", {}).get("sha256") == hexd for s in st.get("subject", [])):
        print("FAIL: no subject with the image digest")
        return 1
    print(json.dumps(st["predicate"]))
    return 0

sys.exit(main())
