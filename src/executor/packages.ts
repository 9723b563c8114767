/**
 * Extra Python and npm packages for tool code: a packages directory holding `python/` (what
 * `pip install --target` writes: importable top-level packages and modules) and `node/` (what
 * `npm ci` writes: `node_modules/`), either or both. Each runtime's sandbox root carries its
 * subdirectory at a fixed path inside the jail, read-only like the rest of the root, and the
 * bootstraps look there (python: on `sys.path`, after the standard library; node: `require()`
 * resolves from `node/node_modules`). In the executor image the directory is PACKAGES_DIR and the
 * prepared roots include it (checked at start like every other file of the root); `mcpworks
 * serve --packages <dir>` names one on this machine.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Runtime } from '../api/v1alpha1/mcpserver.ts';
import { ErrorCode, McpworksError } from '../shared/errors.ts';

/** Where the executor image keeps its packages; also their path inside every jail. */
export const PACKAGES_DIR = '/opt/mcpworks/packages';

/** The runtimes that can have packages, and the subdirectory holding each one's. */
export const PACKAGE_RUNTIMES = ['python', 'node'] as const satisfies readonly Runtime[];

/** Inside path of a runtime's packages (the bootstraps name the same paths). */
export function packagesInside(runtime: (typeof PACKAGE_RUNTIMES)[number]): string {
  return `${PACKAGES_DIR}/${runtime}`;
}

/**
 * What `runtime`'s root gets from the packages directory `dir`: its subdirectory for that
 * runtime at the fixed inside path, or nothing (no directory, no subdirectory, or bash).
 * Throws SandboxUnavailable when `dir` is given but is not a directory: a packages option that
 * names nothing is a mistake, not "no packages".
 */
export function packageFiles(
  dir: string | undefined,
  runtime: Runtime,
): Array<{ source: string; target: string }> {
  if (dir === undefined) return [];
  if (!isDirectory(dir))
    throw new McpworksError(
      ErrorCode.SandboxUnavailable,
      `the packages directory ${dir} does not exist or is not a directory`,
    );
  if (runtime !== 'python' && runtime !== 'node') return [];
  const source = join(dir, runtime);
  if (!existsSync(source)) return [];
  if (!isDirectory(source))
    throw new McpworksError(
      ErrorCode.SandboxUnavailable,
      `${source} is not a directory (a packages directory holds python/ and node/)`,
    );
  return [{ source: realpathSync(source), target: packagesInside(runtime) }];
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
