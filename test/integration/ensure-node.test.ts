/**
 * scripts/ensure-node.sh installs the pinned Node into its own cache directory, even when that
 * directory sits inside another npm project (npm otherwise installs into the nearest parent with a
 * package.json or node_modules, replacing what is there). Runs the real script and the real npm;
 * npm's own cache answers when it holds the package already, so nothing is downloaded twice.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadRuntimePins } from '../../src/executor/runtime-pins.ts';

const execFileAsync = promisify(execFile);
const script = fileURLToPath(new URL('../../scripts/ensure-node.sh', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'mcpworks-ensure-node-'));

after(() => rmSync(work, { recursive: true, force: true }));

/** Every file under `dir` (except `skip`) with its content: the project as npm would leave it. */
function snapshot(dir: string, skip: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (path === skip) continue;
      if (entry.isDirectory()) walk(path);
      else files[relative(dir, path)] = readFileSync(path, 'utf8');
    }
  };
  walk(dir);
  return files;
}

test('ensure-node installs into its cache, not into the npm project around it', async () => {
  const project = join(work, 'project');
  mkdirSync(join(project, 'node_modules', 'left-pad'), { recursive: true });
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: 'parent-project', version: '1.0.0', dependencies: { 'left-pad': '1' } }),
  );
  writeFileSync(
    join(project, 'node_modules', 'left-pad', 'package.json'),
    JSON.stringify({ name: 'left-pad', version: '1.3.0' }),
  );
  writeFileSync(join(project, 'node_modules', 'left-pad', 'index.js'), 'module.exports = 1;\n');
  const nested = join(project, 'tools', 'cache');
  mkdirSync(nested, { recursive: true });
  const before = snapshot(project, nested);

  const { stdout } = await execFileAsync(script, {
    cwd: nested,
    env: { ...process.env, MCPWORKS_CACHE: nested },
    timeout: 300_000,
  });

  const pin = loadRuntimePins().versions.node;
  const bin = join(nested, `node-v${pin}`, 'node_modules', `node-linux-${process.arch}`, 'bin');
  assert.equal(stdout.trim(), bin);
  const { stdout: version } = await execFileAsync(join(bin, 'node'), ['-p', 'process.version']);
  assert.equal(version.trim(), `v${pin}`);
  assert.deepEqual(snapshot(project, nested), before, 'the parent project was changed');

  // A second run finds it in the cache and installs nothing.
  const again = await execFileAsync(script, {
    cwd: nested,
    env: { ...process.env, MCPWORKS_CACHE: nested, PATH: '/usr/bin:/bin' },
  });
  assert.equal(again.stdout.trim(), bin);
  assert.equal(again.stderr, '');
});
