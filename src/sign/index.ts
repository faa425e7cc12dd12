export {
  SignError,
  VerificationError,
  SIGN_ERROR_CODES,
  VERIFICATION_ERROR_CODES,
} from "./errors.js";
export type { SignErrorCode, VerificationErrorCode } from "./errors.js";
export { generateKeyPair, writeKeyPair, loadPrivateKey, loadPublicKey } from "./keys.js";
export type { KeyPairPem, KeyPairPaths, GenerateKeyPairOptions, WriteKeyPairOptions } from "./keys.js";
export {
  buildSimpleSigningPayload,
  parseSimpleSigningPayload,
  COSIGN_SIGNATURE_TYPE,
  SIGNED_AT_KEY,
} from "./payload.js";
export type { BuildPayloadOptions, SimpleSigningPayload } from "./payload.js";
export { signPayload, verifyPayloadSignature, parseDuration } from "./signature.js";
export { signEnvelope, verifyEnvelope, parseEnvelope, preAuthEncoding, decodeBase64Strict, keyIdOf } from "./dsse.js";
export type { DsseEnvelope, DsseSignature, DsseResult, DsseFailure, TrustedKey } from "./dsse.js";
