import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CommandIo } from '../io.ts';
import { McpServerSchema } from '../../api/v1alpha1/mcpserver.ts';
import { gatewayQueueLimits, run } from './gateway.ts';

function capture(): CommandIo & { err: string } {
  const io = {
    err: '',
    stdout: () => {},
    stderr: (t: string) => void (io.err += t),
    env: {
      MCPWORKS_SERVER_NAMESPACE: 'team',
      MCPWORKS_SERVER_NAME: 'tools',
      MCPWORKS_EXECUTOR_URL: 'http://127.0.0.1:1',
      MCPWORKS_EXECUTOR_TOKEN: 'token',
    },
    cwd: '.',
  };
  return io;
}

for (const bad of ['-1', '1.5', 'soon']) {
  test(`--shutdown-delay-seconds=${bad} is refused before anything starts`, async () => {
    const io = capture();
    assert.equal(await run([`--shutdown-delay-seconds=${bad}`], io), 2);
    assert.match(io.err, /--shutdown-delay-seconds must be a non-negative integer/);
  });
}

test('the usage names the shutdown delay the operator sets in gateway pods', async () => {
  let out = '';
  const io = { ...capture(), stdout: (t: string) => void (out += t) };
  assert.equal(await run(['--help'], io), 0);
  assert.match(out, /--shutdown-delay-seconds <n>/);
});

function mcpServer(gateway: object, executor: object) {
  return McpServerSchema.parse({
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'tools', namespace: 'team' },
    spec: {
      auth: { apiKeys: { secretRef: { name: 'keys' } } },
      gateway,
      executor,
      tools: [
        {
          name: 't',
          description: 'd',
          runtime: 'bash',
          code: 'true',
          inputSchema: { type: 'object' },
        },
      ],
    },
  });
}

test("a gateway replica queues for its share of the executor pods' slots", () => {
  // 3 executor pods × 8 slots among 2 gateway replicas: 12 each.
  assert.deepEqual(
    gatewayQueueLimits(mcpServer({ replicas: 2 }, { replicas: 3, maxConcurrency: 8 })),
    {
      maxConcurrent: 12,
      maxQueued: 384,
      maxWaitMs: 30_000,
    },
  );
  assert.equal(gatewayQueueLimits(mcpServer({ replicas: 1 }, { replicas: 0 })).maxConcurrent, 1);
  assert.equal(gatewayQueueLimits(mcpServer({ replicas: 0 }, { replicas: 2 })).maxConcurrent, 16);
  const big = gatewayQueueLimits(
    mcpServer({ replicas: 1 }, { replicas: 100, maxConcurrency: 256 }),
  );
  assert.equal(big.maxQueued, 1024);
});

test('a --audit-signing-key that is not an Ed25519 private key stops the gateway before it starts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mcpworks-gateway-key-'));
  try {
    const keyFile = join(dir, 'x25519.pem');
    writeFileSync(
      keyFile,
      generateKeyPairSync('x25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    );
    const io = capture();
    assert.equal(
      await run(['--audit-signing-key', keyFile, '--kubeconfig', '/nonexistent'], io),
      1,
    );
    assert.match(io.err, /--audit-signing-key \S+x25519\.pem: an x25519 private key, not Ed25519/);
    assert.doesNotMatch(io.err, /Kubernetes configuration/, 'refused before the cluster is read');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
