import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import {
  describeDrift,
  loadRuntimePins,
  nodeImageFor,
  parseRuntimePins,
  runtimeDrift,
} from './runtime-pins.ts';

const pinFile = (overrides: Record<string, string | undefined> = {}) =>
  Object.entries({
    NODE_VERSION: '24.21.0',
    DEBIAN_RELEASE: 'bookworm',
    PYTHON_VERSION: '3.11.2',
    BASH_VERSION: '5.2.15',
    ...overrides,
  })
    .filter(([, value]) => value !== undefined)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n');

describe('parseRuntimePins', () => {
  test('reads KEY=VALUE lines, skipping comments and blank lines', () => {
    const pins = parseRuntimePins(`# pins\n\n${pinFile()}\n`);
    assert.deepEqual(pins, {
      versions: { node: '24.21.0', python: '3.11.2', bash: '5.2.15' },
      debianRelease: 'bookworm',
    });
  });

  test('a missing key is named', () => {
    assert.throws(() => parseRuntimePins(pinFile({ BASH_VERSION: undefined })), /BASH_VERSION/);
  });

  test('an unknown key is refused (a typo must not leave a runtime unpinned)', () => {
    assert.throws(() => parseRuntimePins(`${pinFile()}\nNODE_VERSON=24.0.0`), /NODE_VERSON/);
  });

  test('a key set twice is refused', () => {
    assert.throws(() => parseRuntimePins(`${pinFile()}\nNODE_VERSION=24.0.0`), /set twice/);
  });

  test('quotes, spaces and partial versions are refused', () => {
    assert.throws(() => parseRuntimePins(pinFile({ NODE_VERSION: '"24.21.0"' })), /NODE_VERSION/);
    assert.throws(() => parseRuntimePins(`${pinFile()}\nX = 1`), /line 5 is not KEY=VALUE/);
    assert.throws(() => parseRuntimePins(pinFile({ PYTHON_VERSION: '3.11' })), /PYTHON_VERSION/);
  });
});

describe('the repository pin file', () => {
  const pins = loadRuntimePins();

  for (const dockerfile of [
    'Dockerfile',
    'sandbox-image/Dockerfile',
    'sandbox-image/packages/Dockerfile',
  ]) {
    test(`${dockerfile}'s NODE_IMAGE default is the pinned Node on the pinned Debian release`, () => {
      const text = readFileSync(
        fileURLToPath(new URL(`../../${dockerfile}`, import.meta.url)),
        'utf8',
      );
      const defaults = [...text.matchAll(/^ARG NODE_IMAGE=(\S+)$/gm)].map((m) => m[1]);
      assert.deepEqual(defaults, [nodeImageFor(pins)]);
    });
  }

  test('scripts/ensure-node.sh takes its version from the pin file, not a copy', () => {
    const script = readFileSync(
      fileURLToPath(new URL('../../scripts/ensure-node.sh', import.meta.url)),
      'utf8',
    );
    assert.match(script, /sandbox-image\/runtimes\.env/);
    assert.doesNotMatch(script, new RegExp(pins.versions.node.replaceAll('.', '\\.')));
  });
});

describe('runtimeDrift', () => {
  const pins = parseRuntimePins(pinFile());
  const paths = { python: '/usr/bin/python3', node: '/usr/bin/node', bash: '/bin/bash' };

  test('nothing when every runtime is at its pin', () => {
    assert.deepEqual(
      runtimeDrift(pins, { python: '3.11.2', node: '24.21.0', bash: '5.2.15' }, paths),
      [],
    );
  });

  test('names the runtime, its path, what was found and what is pinned', () => {
    const drift = runtimeDrift(pins, { python: '3.11.2', node: '20.20.2', bash: '5.2.15' }, paths);
    assert.deepEqual(drift, [
      { runtime: 'node', path: '/usr/bin/node', found: '20.20.2', pinned: '24.21.0' },
    ]);
    assert.equal(describeDrift(drift), 'node 20.20.2 at /usr/bin/node, but node 24.21.0 is pinned');
  });
});
