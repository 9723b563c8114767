// Public surface of gateway authentication; the HTTP layer and the CLI import from here.
export * from './types.ts';
export * from './principal.ts';
export { extractCredential, hasCredentialInQuery } from './credentials.ts';
export {
  ApiKeyStore,
  ApiKeyVerifier,
  apiKeyEntriesFromSecret,
  apiKeyId,
  generateApiKey,
  hashApiKey,
  apiKeyCredentialFields,
  apiKeyTag,
  type ApiKeyEntry,
  type ReplaceResult,
} from './apikeys.ts';
export { OidcVerifier, ALLOWED_JWT_ALGORITHMS, discoveryUrl } from './oidc.ts';
export {
  ServiceAccountVerifier,
  type TokenReviewer,
  type TokenReviewResult,
} from './serviceaccount.ts';
export { httpsJsonFetcher, type JsonFetcher } from './https.ts';
export {
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  wwwAuthenticate,
  type ProtectedResourceMetadata,
} from './challenge.ts';
export {
  createAuthenticator,
  type AuthSpec,
  type AuthenticatorOptions,
  type GatewayAuthenticator,
} from './authenticator.ts';
