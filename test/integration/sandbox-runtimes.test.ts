/**
 * One runtime, everywhere: the interpreters this host's sandboxes run are the versions pinned in
 * sandbox-image/runtimes.env, which the executor image is built from. Checked on the host
 * binaries the executor picks, and from inside the real nsjail sandbox by tool code.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Runtime } from '../../src/api/v1alpha1/mcpserver.ts';
import { defaultRuntimePaths } from '../../src/executor/runtime-files.ts';
import {
  describeDrift,
  loadRuntimePins,
  runtimeDrift,
  runtimeVersions,
} from '../../src/executor/runtime-pins.ts';
import { createSandboxExecutor } from '../../src/executor/sandbox-executor.ts';
import { nsjailForTests, toolCall } from '../../src/executor/testing.ts';
import type { SandboxExecutor } from '../../src/executor/types.ts';
import { findInterpreter } from '../harness/nsjail.ts';

const pins = loadRuntimePins();

test('the sandbox runtimes the executor picks on this host are the pinned versions', async () => {
  const paths = defaultRuntimePaths();
  const drift = runtimeDrift(pins, await runtimeVersions(paths), paths);
  assert.deepEqual(
    drift,
    [],
    `${describeDrift(drift)} (sandbox-image/runtimes.env; run the tests with the node scripts/ensure-node.sh prints, as make does)`,
  );
});

test("the test harness's interpreters are the pinned versions too", async () => {
  const paths = {
    ...defaultRuntimePaths(),
    node: findInterpreter('node'),
    python: findInterpreter('python3'),
  };
  assert.deepEqual(runtimeDrift(pins, await runtimeVersions(paths), paths), []);
});

describe('inside the real sandbox', () => {
  let executor: SandboxExecutor;
  before(async () => {
    executor = await createSandboxExecutor({ nsjailPath: nsjailForTests(), warmPoolSize: 0 });
    await executor.probe();
  });
  after(async () => {
    await executor?.close();
  });

  const versionCode: Record<Runtime, string> = {
    node: 'function main() { return process.versions.node; }',
    python: 'import sys\ndef main(args):\n    return "%d.%d.%d" % sys.version_info[:3]\n',
    bash: 'echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"',
  };
  for (const runtime of ['node', 'python', 'bash'] as const) {
    test(`a ${runtime} tool call succeeds and runs ${runtime} at the pinned version`, async () => {
      const r = await executor.execute(toolCall(runtime, versionCode[runtime]));
      const output = r.content.map((c) => c.text).join('');
      assert.equal(r.outcome, 'ok', output);
      assert.equal(output.trim(), pins.versions[runtime]);
    });
  }
});
