export { authHook, assertSelf, principalOf, routeDecl } from "./hook.js";
export { authenticate, permissionsOf, principalName } from "./principal.js";
export { newSecret, hashToken, parseSecret, bearerOf } from "./secrets.js";
export type { NewSecret, SecretKind } from "./secrets.js";
