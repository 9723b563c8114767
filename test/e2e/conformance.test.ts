// The official MCP conformance suite (@modelcontextprotocol/conformance) against a real
// `mcpworks serve` running test/conformance/server.yaml (real nsjail). Fails on any failure not in
// test/conformance/expected-failures.yaml, and on any listed scenario that starts passing.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { repoRoot } from '../harness/paths.ts';
import { startServe, type RunningServe } from './serve-harness.ts';

const require = createRequire(import.meta.url);
const SUITE_BIN = join(
  dirname(require.resolve('@modelcontextprotocol/conformance/package.json')),
  'dist',
  'index.js',
);
const SERVER = join(repoRoot, 'test', 'conformance', 'server.yaml');
const BASELINE = join(repoRoot, 'test', 'conformance', 'expected-failures.yaml');

let serve: RunningServe;
before(async () => {
  serve = await startServe([SERVER]);
});
after(async () => {
  await serve?.stop();
});

function runSuite(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    void mkdtemp(join(tmpdir(), 'mcpworks-conformance-')).then((cwd) => {
      execFile(
        process.execPath,
        [SUITE_BIN, 'server', '--url', `${serve.base}/mcp`, ...args],
        { cwd, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
          if (error !== null && typeof error.code !== 'number') reject(error);
          else resolve({ code, output: `${stdout}\n${stderr}` });
        },
      );
    }, reject);
  });
}

function summary(output: string): string {
  const at = output.lastIndexOf('=== SUMMARY ===');
  return at === -1 ? output.slice(-4000) : output.slice(at);
}

test('the active conformance suite has no failure beyond the expected-failures baseline', async () => {
  const { code, output } = await runSuite(['--suite', 'active', '--expected-failures', BASELINE]);
  assert.equal(code, 0, summary(output));
  assert.match(output, /server-initialize: 1 passed, 0 failed/);
  assert.match(output, /tools-call-simple-text: 1 passed, 0 failed/);
  assert.match(output, /dns-rebinding-protection: 2 passed, 0 failed/);
});

test('the pending conformance scenarios pass (JSON Schema 2020-12 preserved, SSE polling)', async () => {
  const { code, output } = await runSuite(['--suite', 'pending']);
  assert.equal(code, 0, summary(output));
  assert.match(output, /json-schema-2020-12: 4 passed, 0 failed/);
});
