// What the HTTP layer sends back about authentication: the WWW-Authenticate challenge (RFC 6750
// section 3, with RFC 9728's resource_metadata) and the protected-resource metadata document.
import type { AuthFailure } from './types.ts';

/** RFC 7230 quoted-string: escape `"` and `\`, drop control characters. */
function quoted(value: string): string {
  // eslint-disable-next-line no-control-regex
  return `"${value.replace(/[\u0000-\u001f\u007f]/g, '').replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * `Bearer resource_metadata="…"` plus `error`, `error_description` and `scope` when the failure
 * has them. Pass the configured required scopes as `scope` to advertise them on a bare 401.
 */
export function wwwAuthenticate(
  resourceMetadataUrl: string,
  failure?: Pick<AuthFailure, 'error' | 'message' | 'scope'>,
  scope?: readonly string[],
): string {
  const params = [`resource_metadata=${quoted(resourceMetadataUrl)}`];
  if (failure?.error !== undefined) {
    params.push(`error=${quoted(failure.error)}`);
    params.push(`error_description=${quoted(failure.message)}`);
  }
  const scopes = failure?.scope ?? scope;
  if (scopes !== undefined && scopes.length > 0) params.push(`scope=${quoted(scopes.join(' '))}`);
  return `Bearer ${params.join(', ')}`;
}

/**
 * RFC 9728 section 3.1: the metadata of `https://host/mcp/a/b` lives at
 * `https://host/.well-known/oauth-protected-resource/mcp/a/b`.
 */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
  return `${url.origin}/.well-known/oauth-protected-resource${path}`;
}

export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers?: string[];
  scopes_supported?: string[];
  bearer_methods_supported: ['header'];
  resource_name?: string;
}

/** The RFC 9728 document: who issues tokens for this resource and how to present them. */
export function protectedResourceMetadata(options: {
  resource: string;
  authorizationServers?: readonly string[];
  scopesSupported?: readonly string[];
  resourceName?: string;
}): ProtectedResourceMetadata {
  const doc: ProtectedResourceMetadata = {
    resource: options.resource,
    bearer_methods_supported: ['header'],
  };
  if (options.authorizationServers !== undefined && options.authorizationServers.length > 0) {
    doc.authorization_servers = [...options.authorizationServers];
  }
  if (options.scopesSupported !== undefined && options.scopesSupported.length > 0) {
    doc.scopes_supported = [...options.scopesSupported];
  }
  if (options.resourceName !== undefined) doc.resource_name = options.resourceName;
  return doc;
}
