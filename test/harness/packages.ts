// The example packages of sandbox-image/packages/ (requirements.txt pinned by sha256,
// package-lock.json with integrity hashes), installed on this machine the way the example
// Dockerfile installs them into an image: `pip install --require-hashes --no-deps --target`
// and `npm ci`, through the ordinary clients and whatever package index they are configured with.
// Cached outside the clone by a hash of the pins, so an unchanged pin set fetches nothing. A
// fetch that fails is an error (the test fails), never a skip.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cacheDir, repoRoot } from './paths.ts';

const execFileAsync = promisify(execFile);

/** The example's pin files, relative to the repository root. */
export const EXAMPLE_PACKAGES = 'sandbox-image/packages';
const PIN_FILES = ['requirements.txt', 'package.json', 'package-lock.json'] as const;

/** What the example pins, as tool code uses it (kept in step with the pin files by a test). */
export const EXAMPLE_PINS = { python: { idna: '3.10' }, node: { ms: '2.1.3' } } as const;

export function examplePackagesKey(root: string = repoRoot): string {
  const hash = createHash('sha256');
  for (const name of PIN_FILES) {
    hash.update(`${name}\0`);
    hash.update(readFileSync(join(root, EXAMPLE_PACKAGES, name)));
  }
  return hash.digest('hex').slice(0, 16);
}

async function run(command: string, args: string[], cwd?: string): Promise<void> {
  try {
    await execFileAsync(command, args, {
      cwd,
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
      env: {
        ...process.env,
        PIP_DISABLE_PIP_VERSION_CHECK: '1',
        npm_config_update_notifier: 'false',
      },
    });
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(
      `${command} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`,
      { cause: error },
    );
  }
}

/**
 * A packages directory (`python/`, `node/`) holding the example's pinned packages, built once
 * per pin set under `<cache>/packages/<key>`.
 */
export async function ensureExamplePackages(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const dir = join(cacheDir(env), 'packages', examplePackagesKey());
  if (existsSync(join(dir, 'complete'))) return dir;
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(join(partial, 'node'), { recursive: true, mode: 0o755 });
  const source = join(repoRoot, EXAMPLE_PACKAGES);
  // pip from a virtual environment of the host's python3 (as scripts/install-nsjail.sh does: a
  // bare machine's python3 may have no pip); its bytecode is the sandbox python's minor version.
  const venv = join(cacheDir(env), 'packages', 'pip-venv');
  if (!existsSync(join(venv, 'bin', 'pip'))) {
    rmSync(venv, { recursive: true, force: true });
    await run('python3', ['-m', 'venv', venv]);
  }
  await run(join(venv, 'bin', 'pip'), [
    'install',
    '--require-hashes',
    '--no-deps',
    '--only-binary=:all:',
    '--target',
    join(partial, 'python'),
    '-r',
    join(source, 'requirements.txt'),
  ]);
  for (const name of ['package.json', 'package-lock.json'])
    copyFileSync(join(source, name), join(partial, 'node', name));
  // Any npm does (as scripts/ensure-node.sh needs one): npm ci checks every integrity hash.
  await run(
    'npm',
    ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'],
    join(partial, 'node'),
  );
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  writeFileSync(join(dir, 'complete'), '');
  return dir;
}
