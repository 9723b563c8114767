import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CommandIo } from '../io.ts';
import { run } from './controller.ts';

function capture(env: Record<string, string> = {}): CommandIo & { err: string } {
  const io = {
    err: '',
    stdout: () => {},
    stderr: (t: string) => void (io.err += t),
    env,
    cwd: '.',
  };
  return io;
}

for (const [args, env] of [
  [['--executor-dns-pod-labels=k8s-app'], {}],
  [['--executor-dns-namespace=Kube_System'], {}],
  [[], { MCPWORKS_EXECUTOR_DNS_POD_LABELS: 'a b=c' }],
] as const) {
  test(`a bad DNS peer is refused before anything starts: ${JSON.stringify([args, env])}`, async () => {
    const io = capture({ ...env });
    assert.equal(await run([...args], io), 2);
    assert.match(io.err, /--executor-dns-\*: DNS (namespace|pod labels)/);
  });
}
