import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  wwwAuthenticate,
} from './challenge.ts';
import { authFailure } from './types.ts';

const META = 'https://mcp.example.com/.well-known/oauth-protected-resource/mcp/team/tools';

describe('wwwAuthenticate', () => {
  test('a missing credential gets a bare challenge naming the metadata', () => {
    assert.equal(
      wwwAuthenticate(META, authFailure('missing-credentials')),
      `Bearer resource_metadata="${META}"`,
    );
  });

  test('a bad token gets error="invalid_token" and a description', () => {
    assert.equal(
      wwwAuthenticate(META, authFailure('expired')),
      `Bearer resource_metadata="${META}", error="invalid_token", error_description="the credential has expired"`,
    );
  });

  test('missing scopes give error="insufficient_scope" and the scopes needed', () => {
    const header = wwwAuthenticate(
      META,
      authFailure('insufficient-scope', { scope: ['mcp:tools', 'mcp:call'] }),
    );
    assert.match(header, /error="insufficient_scope"/);
    assert.match(header, /scope="mcp:tools mcp:call"/);
  });

  test('configured scopes are advertised on a bare 401', () => {
    assert.match(
      wwwAuthenticate(META, authFailure('missing-credentials'), ['mcp:tools']),
      /scope="mcp:tools"$/,
    );
  });

  test('quotes and backslashes in values are escaped', () => {
    assert.equal(
      wwwAuthenticate('https://x/"a\\b'),
      'Bearer resource_metadata="https://x/\\"a\\\\b"',
    );
  });
});

describe('protected resource metadata', () => {
  test('the metadata URL inserts the well-known path before the resource path (RFC 9728 3.1)', () => {
    assert.equal(protectedResourceMetadataUrl('https://mcp.example.com/mcp/team/tools'), META);
    assert.equal(
      protectedResourceMetadataUrl('http://127.0.0.1:8080/'),
      'http://127.0.0.1:8080/.well-known/oauth-protected-resource',
    );
  });

  test('the document names the resource, its issuers, scopes and header-only bearer use', () => {
    assert.deepEqual(
      protectedResourceMetadata({
        resource: 'https://mcp.example.com/mcp/team/tools',
        authorizationServers: ['https://idp.example.com'],
        scopesSupported: ['mcp:tools'],
      }),
      {
        resource: 'https://mcp.example.com/mcp/team/tools',
        authorization_servers: ['https://idp.example.com'],
        scopes_supported: ['mcp:tools'],
        bearer_methods_supported: ['header'],
      },
    );
  });

  test('empty lists are left out of the document', () => {
    assert.deepEqual(
      protectedResourceMetadata({ resource: 'https://x/mcp', authorizationServers: [] }),
      {
        resource: 'https://x/mcp',
        bearer_methods_supported: ['header'],
      },
    );
  });
});
