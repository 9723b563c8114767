import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApiKeyStore, ApiKeyVerifier, apiKeyTag } from '../../gateway/auth/apikeys.ts';
import { manualClock } from '../../shared/clock.ts';
import { silentLogger } from '../../shared/logger.ts';
import type { CommandIo } from '../io.ts';
import { run } from './apikey.ts';

function capture(): CommandIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout: (t: string) => void (io.out += t),
    stderr: (t: string) => void (io.err += t),
    env: {},
    cwd: '.',
  };
  return io;
}

describe('mcpworks apikey new', () => {
  test('prints a key that the entry it prints verifies', async () => {
    const io = capture();
    const code = await run(['new', 'ci-bot', '--agent', 'ci', '--group', 'builders', '--json'], io);
    assert.equal(code, 0, io.err);
    const { id, key, entry } = JSON.parse(io.out) as { id: string; key: string; entry: string };
    assert.equal(id, 'ci-bot');
    const { tag } = JSON.parse(entry) as { tag?: string };
    assert.equal(tag, apiKeyTag(key, (JSON.parse(entry) as { hash: string }).hash));
    const verifier = new ApiKeyVerifier({
      store: ApiKeyStore.from({ [id]: entry }),
      clock: manualClock(),
      logger: silentLogger(),
    });
    const result = await verifier.verify(key);
    assert.ok(result.ok);
    assert.deepEqual(result.principal.groups, ['builders']);
  });

  test('refuses an invalid id', async () => {
    const io = capture();
    assert.equal(await run(['new', 'Bad_Id', '--agent', 'x'], io), 2);
    assert.match(io.err, /key id/);
  });

  test('refuses a missing agent and a bad expiry', async () => {
    const io = capture();
    assert.equal(await run(['new', 'ok', '--expires', 'soon'], io), 2);
    assert.match(io.err, /--agent/);
    assert.match(io.err, /--expires/);
  });
});
