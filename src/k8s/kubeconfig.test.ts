import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RequestOptions } from 'node:https';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { loadInCluster, loadKubeconfigFile } from './kubeconfig.ts';

function kubeconfig(user: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-test-'));
  const path = join(dir, 'config');
  writeFileSync(
    path,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'c',
          cluster: {
            server: 'https://127.0.0.1:6443',
            'certificate-authority-data': Buffer.from('CA').toString('base64'),
          },
        },
      ],
      users: [{ name: 'u', user }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  return path;
}

test('a token kubeconfig gives the server, the CA and a bearer header', async () => {
  const conn = loadKubeconfigFile(kubeconfig({ token: 't0ken' }));
  assert.equal(conn.getCurrentCluster()?.server, 'https://127.0.0.1:6443');
  const opts: RequestOptions = {};
  await conn.applyToHTTPSOptions(opts);
  assert.equal(String(opts.ca), 'CA');
  assert.equal((opts.headers as Record<string, string>)['authorization'], 'Bearer t0ken');
});

test('exec plugins are refused, not ignored', () => {
  assert.throws(
    () => loadKubeconfigFile(kubeconfig({ exec: { command: 'aws' } })),
    /exec or auth-provider/,
  );
});

test('the in-cluster configuration re-reads the token (projected tokens rotate)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sa-'));
  writeFileSync(join(dir, 'ca.crt'), 'CA');
  writeFileSync(join(dir, 'token'), 'one');
  const conn = loadInCluster(
    { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' },
    dir,
  );
  const first: { headers?: Record<string, string> } = {};
  await conn.applyToHTTPSOptions(first);
  writeFileSync(join(dir, 'token'), 'two');
  const second: { headers?: Record<string, string> } = {};
  await conn.applyToHTTPSOptions(second);
  assert.equal(first.headers?.['authorization'], 'Bearer one');
  assert.equal(second.headers?.['authorization'], 'Bearer two');
  assert.equal(conn.getCurrentCluster()?.server, 'https://10.0.0.1:443');
});
