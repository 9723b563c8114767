import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { SecretManifest } from '../api/manifests.ts';
import type { SecretEnvVar } from '../api/v1alpha1/mcpserver.ts';
import {
  MAX_SECRET_BYTES,
  MIN_SECRET_BYTES,
  createDirectorySecretSource,
  createManifestSecretSource,
  reservedManifestSecrets,
  resolveSecretEnv,
  secretEnvProblems,
} from './secrets.ts';

const root = mkdtempSync(join(tmpdir(), 'mcpworks-secrets-test-'));
after(() => rmSync(root, { recursive: true, force: true }));

let generation = 0;
/**
 * Writes a Secret volume as the kubelet does: the files in a timestamped directory, `..data`
 * a symlink to it (swapped by rename, atomically), and each key a symlink through `..data`.
 */
function writeSecretVolume(dir: string, name: string, data: Record<string, string>): void {
  const volume = join(dir, name);
  mkdirSync(volume, { recursive: true });
  generation += 1;
  const stamped = `..2026_12_03_${generation}`;
  mkdirSync(join(volume, stamped));
  for (const [key, value] of Object.entries(data)) writeFileSync(join(volume, stamped, key), value);
  symlinkSync(stamped, join(volume, '..data_tmp'));
  renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
  for (const key of Object.keys(data)) {
    try {
      symlinkSync(join('..data', key), join(volume, key));
    } catch {
      // already linked by an earlier generation
    }
  }
}

const variable = (name: string, secret: string, key: string): SecretEnvVar => ({
  name,
  secretKeyRef: { name: secret, key },
});

describe('directory source (Secret volumes)', () => {
  const dir = join(root, 'volumes');
  mkdirSync(dir);
  const source = createDirectorySecretSource(dir);

  test('reads a key through the ..data symlinks and sees a rotation on the next read', async () => {
    writeSecretVolume(dir, 'github', { token: 'first-token-value' });
    const first = await source.read({ namespace: 'ns', name: 'github', key: 'token' });
    assert.deepEqual(first, { found: true, value: Buffer.from('first-token-value') });
    writeSecretVolume(dir, 'github', { token: 'second-token-value' });
    const second = await source.read({ namespace: 'ns', name: 'github', key: 'token' });
    assert.deepEqual(second, { found: true, value: Buffer.from('second-token-value') });
  });

  test('a missing Secret directory and a missing key are told apart', async () => {
    assert.deepEqual(await source.read({ namespace: 'ns', name: 'absent', key: 'token' }), {
      found: false,
      missing: 'secret',
    });
    writeSecretVolume(dir, 'partial', { other: 'some-other-value' });
    assert.deepEqual(await source.read({ namespace: 'ns', name: 'partial', key: 'token' }), {
      found: false,
      missing: 'key',
    });
  });

  test('a file longer than the maximum is read far enough to be refused as too long', async () => {
    mkdirSync(join(dir, 'big'));
    writeFileSync(join(dir, 'big', 'value'), Buffer.alloc(MAX_SECRET_BYTES * 2, 'a'));
    const lookup = await source.read({ namespace: 'ns', name: 'big', key: 'value' });
    assert.equal(lookup.found && lookup.value.length, MAX_SECRET_BYTES + 1);
  });

  test('the kubelet entries, dot-dot keys and links out of the volume are never read', async () => {
    writeSecretVolume(dir, 'tricky', { token: 'tricky-token-value' });
    for (const key of ['..data', '..', '.', '..2026_12_03_1']) {
      const lookup = await source.read({ namespace: 'ns', name: 'tricky', key });
      assert.equal(lookup.found, false, key);
    }
    writeFileSync(join(root, 'outside'), 'outside-the-volume');
    symlinkSync(join(root, 'outside'), join(dir, 'tricky', 'escape'));
    assert.deepEqual(await source.read({ namespace: 'ns', name: 'tricky', key: 'escape' }), {
      found: false,
      missing: 'unreadable',
    });
    mkdirSync(join(dir, 'tricky', 'adir'));
    assert.deepEqual(await source.read({ namespace: 'ns', name: 'tricky', key: 'adir' }), {
      found: false,
      missing: 'unreadable',
    });
  });
});

function secretManifest(
  namespace: string,
  name: string,
  data: Record<string, string>,
): SecretManifest {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'Opaque',
    data: Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
  } as SecretManifest;
}

describe('manifest source (serve)', () => {
  test("a server's API key Secret is not readable by tools, with a message that says so", async () => {
    const reserved = reservedManifestSecrets([
      {
        metadata: { namespace: 'team-a', name: 'tools' },
        spec: { auth: { apiKeys: { secretRef: { name: 'tools-keys' } } } },
      },
    ]);
    const source = createManifestSecretSource(
      [secretManifest('team-a', 'tools-keys', { k1: 'scrypt-entry-json' })],
      reserved,
    );
    const variable: SecretEnvVar = {
      name: 'KEYS',
      secretKeyRef: { name: 'tools-keys', key: 'k1' },
    };
    const resolved = await resolveSecretEnv([variable], 'team-a', source);
    assert.equal(resolved.ok, false);
    assert.match(
      resolved.ok ? '' : resolved.message,
      /Secret team-a\/tools-keys is the API key Secret of McpServer team-a\/tools, which tools may not read/,
    );
  });

  test('reads by namespace, name and key; replace() swaps the Secrets', async () => {
    const source = createManifestSecretSource([
      secretManifest('team-a', 'api', { token: 'team-a-token' }),
    ]);
    assert.deepEqual(await source.read({ namespace: 'team-a', name: 'api', key: 'token' }), {
      found: true,
      value: Buffer.from('team-a-token'),
    });
    // Another namespace's Secret of the same name is not this one.
    assert.deepEqual(await source.read({ namespace: 'team-b', name: 'api', key: 'token' }), {
      found: false,
      missing: 'secret',
    });
    assert.deepEqual(await source.read({ namespace: 'team-a', name: 'api', key: 'nope' }), {
      found: false,
      missing: 'key',
    });
    assert.deepEqual(await source.read({ namespace: 'team-a', name: 'api', key: 'constructor' }), {
      found: false,
      missing: 'key',
    });
    source.replace([secretManifest('team-a', 'api', { token: 'rotated-token' })]);
    assert.deepEqual(await source.read({ namespace: 'team-a', name: 'api', key: 'token' }), {
      found: true,
      value: Buffer.from('rotated-token'),
    });
  });
});

describe('resolveSecretEnv', () => {
  const source = createManifestSecretSource([
    secretManifest('ns', 'api', { token: 'a-long-enough-token', short: 'seven77', both: 'x' }),
    {
      ...secretManifest('ns', 'binary', {}),
      data: { raw: Buffer.from([0xff, 0xfe, 0x00, 0x01, 1, 2, 3, 4, 5]).toString('base64') },
    } as SecretManifest,
    secretManifest('ns', 'nul', { value: 'has\0a-nul-inside' }),
    secretManifest('ns', 'huge', { value: 'x'.repeat(MAX_SECRET_BYTES + 1) }),
  ]);

  test('every declared variable, by name', async () => {
    const resolved = await resolveSecretEnv(
      [variable('TOKEN', 'api', 'token'), variable('AGAIN', 'api', 'token')],
      'ns',
      source,
    );
    assert.deepEqual(resolved, {
      ok: true,
      env: { TOKEN: 'a-long-enough-token', AGAIN: 'a-long-enough-token' },
      values: [
        { name: 'TOKEN', value: 'a-long-enough-token' },
        { name: 'AGAIN', value: 'a-long-enough-token' },
      ],
    });
  });

  const refusals: [string, SecretEnvVar, RegExp][] = [
    [
      'a missing Secret',
      variable('TOKEN', 'gone', 'token'),
      /^secretEnv TOKEN: Secret ns\/gone not found$/,
    ],
    [
      'a missing key',
      variable('TOKEN', 'api', 'nokey'),
      /^secretEnv TOKEN: key "nokey" of Secret ns\/api is missing$/,
    ],
    [
      'a value that is too short',
      variable('SHORT', 'api', 'short'),
      new RegExp(
        `^secretEnv SHORT: key "short" of Secret ns/api is shorter than ${MIN_SECRET_BYTES} bytes`,
      ),
    ],
    ['bytes that are not UTF-8', variable('RAW', 'binary', 'raw'), /is not UTF-8 text$/],
    ['a NUL character', variable('NUL', 'nul', 'value'), /contains a NUL character$/],
    [
      'a value longer than the maximum',
      variable('HUGE', 'huge', 'value'),
      new RegExp(`of Secret ns/huge is longer than ${MAX_SECRET_BYTES} bytes$`),
    ],
  ];
  for (const [what, refused, message] of refusals) {
    test(`${what} refuses the call, naming variable, Secret and key, never the value`, async () => {
      const resolved = await resolveSecretEnv(
        [variable('TOKEN_OK', 'api', 'token'), refused],
        'ns',
        source,
      );
      assert.equal(resolved.ok, false);
      const text = resolved.ok ? '' : resolved.message;
      assert.match(text, message);
      for (const value of ['a-long-enough-token', 'seven77', 'has\0a-nul-inside'])
        assert.ok(!text.includes(value));
    });
  }

  test('no source configured refuses a tool that declares secretEnv', async () => {
    const resolved = await resolveSecretEnv([variable('TOKEN', 'api', 'token')], 'ns', undefined);
    assert.deepEqual(resolved, {
      ok: false,
      message:
        'secretEnv TOKEN: key "token" of Secret ns/api cannot be read: this executor has no secret source configured',
    });
  });
});

describe('secretEnvProblems (serve warnings)', () => {
  test('one line per unsatisfied reference, naming server, tool, variable, Secret and key', async () => {
    const source = createManifestSecretSource([
      secretManifest('team', 'api', { token: 'long-enough-token', pin: '123' }),
    ]);
    const server = (namespace: string) => ({
      metadata: { namespace, name: 'tools' },
      spec: {
        tools: [
          { name: 'fine', secretEnv: [variable('TOKEN', 'api', 'token')] },
          { name: 'nokey', secretEnv: [variable('OTHER', 'api', 'other')] },
          { name: 'short', secretEnv: [variable('PIN', 'api', 'pin')] },
          { name: 'plain' },
        ],
      },
    });
    assert.deepEqual(await secretEnvProblems([server('team'), server('elsewhere')], source), [
      'McpServer team/tools: tool nokey: secretEnv OTHER: key "other" of Secret team/api is missing; its calls fail closed',
      'McpServer team/tools: tool short: secretEnv PIN: key "pin" of Secret team/api is shorter than 8 bytes, too short to be redacted reliably; its calls fail closed',
      'McpServer elsewhere/tools: tool fine: secretEnv TOKEN: Secret elsewhere/api not found; its calls fail closed',
      'McpServer elsewhere/tools: tool nokey: secretEnv OTHER: Secret elsewhere/api not found; its calls fail closed',
      'McpServer elsewhere/tools: tool short: secretEnv PIN: Secret elsewhere/api not found; its calls fail closed',
    ]);
  });
});
