/**
 * Known-answer values the self-tests check against. None of them was computed
 * by this code base; each comes from an independent source named next to it.
 * The shipped package has no test/ directory, so they are embedded here.
 */

/**
 * The golden activation lock: test/fixtures/lock/golden.lock.json, copied
 * verbatim (4-space indentation, human key order: not canonical on purpose, so
 * the check also proves layout does not affect the fingerprint). Keep in sync
 * with that file; test/evidence/lab-portability.test.ts compares them.
 */
export const GOLDEN_LOCK_JSON = `{
    "schema_version": "v0",
    "agent_artifact": {
        "ref": "registry.example.com/fleet/arm-agent:1.4.2",
        "digest": "sha256:da1b8633ff205504ece14d877d2255979b34163487dd23831e97984f9b8f0753"
    },
    "policy_bundle": {
        "ref": "registry.example.com/fleet/arm-safety:v1.2.0",
        "digest": "sha256:95d78bff6f47b59c8787f8a980af18faa3ca6d34401348abf4afc6f8642ba2de"
    },
    "inputs": {
        "tool_inputs_hash": "blake3:830fd2ee59789c9ab08b0929ab47df6bbe08896ddfadc7ea7558e4d6e3228698",
        "prompt_hash": "sha256:cf07194ee232eb531e15f690000d19846dea69cf05504782658afcfacb9228a2"
    },
    "behavioral_fingerprint": "blake3:328ea0350478facf1c0d4a36a4f420c6ff98ed72278d8a6dc993d33ec0648750"
}
`;

/**
 * test/fixtures/lock/golden.payload.json: the RFC 8785 canonical JSON of the
 * golden lock without behavioral_fingerprint, produced once by Python
 * (`json.dumps(lock, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`).
 */
export const GOLDEN_PAYLOAD =
  `{"agent_artifact":{"digest":"sha256:da1b8633ff205504ece14d877d2255979b34163487dd23831e97984f9b8f0753","ref":"registry.example.com/fleet/arm-agent:1.4.2"},` +
  `"inputs":{"prompt_hash":"sha256:cf07194ee232eb531e15f690000d19846dea69cf05504782658afcfacb9228a2","tool_inputs_hash":"blake3:830fd2ee59789c9ab08b0929ab47df6bbe08896ddfadc7ea7558e4d6e3228698"},` +
  `"policy_bundle":{"digest":"sha256:95d78bff6f47b59c8787f8a980af18faa3ca6d34401348abf4afc6f8642ba2de","ref":"registry.example.com/fleet/arm-safety:v1.2.0"},"schema_version":"v0"}`;

/** test/fixtures/lock/golden.fingerprint: `blake3:` + `b3sum --no-names golden.payload.json` (b3sum 1.2.0, the reference tool). */
export const GOLDEN_FINGERPRINT = "blake3:328ea0350478facf1c0d4a36a4f420c6ff98ed72278d8a6dc993d33ec0648750";

/**
 * BLAKE3-256 known answers from the BLAKE3 team's test_vectors.json (input =
 * bytes `i % 251` for i < length), confirmed with b3sum: lengths 0 and 1025
 * (more than one 1 KiB chunk, so the tree mode is exercised), and "abc".
 */
export const BLAKE3_VECTORS: readonly { name: string; input: () => Uint8Array; hex: string }[] = [
  { name: "empty input", input: () => new Uint8Array(0), hex: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262" },
  { name: "\"abc\"", input: () => new TextEncoder().encode("abc"), hex: "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85" },
  { name: "1025 bytes i%251 (two chunks)", input: () => Uint8Array.from({ length: 1025 }, (_, i) => i % 251), hex: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444" },
];

/** RFC 8785 §3.2.3: the input and canonical output of the standard's own example. */
export const JCS_RFC8785_EXAMPLE = {
  input: String.raw`{ "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false] }`,
  canonical: String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
};

/** RFC 8785 §3.2.3 property sorting example: keys ordered by UTF-16 code units (the emoji's surrogates sort before U+FB33). */
export const JCS_RFC8785_SORTING = {
  input: String.raw`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
  keyOrder: ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"],
};
