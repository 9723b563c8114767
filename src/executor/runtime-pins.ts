/**
 * The sandbox runtimes' pinned versions, kept in one file (sandbox-image/runtimes.env) that the
 * image's Dockerfiles, scripts/ensure-node.sh, the tests and `mcpworks serve` all follow, and the
 * versions of the interpreters a sandbox would really run here.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { z } from 'zod';
import { RUNTIMES, type Runtime } from '../api/v1alpha1/mcpserver.ts';
import type { RuntimePaths } from './types.ts';

const execFileAsync = promisify(execFile);

export const RUNTIME_PINS_FILE = fileURLToPath(
  new URL('../../sandbox-image/runtimes.env', import.meta.url),
);

const version = z.string().regex(/^\d+\.\d+\.\d+$/, 'a version like 1.2.3');

/** The file's keys (KEY=VALUE lines); every one is required and no other is accepted. */
const RuntimePinsFileSchema = z
  .object({
    NODE_VERSION: version,
    DEBIAN_RELEASE: z.string().regex(/^[a-z]+$/, 'a Debian code name like bookworm'),
    PYTHON_VERSION: version,
    BASH_VERSION: version,
  })
  .strict();

export interface RuntimePins {
  /** Interpreter version per sandbox runtime (`major.minor.patch`). */
  versions: Record<Runtime, string>;
  /** The Debian release of the images' base, whose packages give python3 and bash. */
  debianRelease: string;
}

/** Parses the pin file's text; throws an Error naming the line or key that is wrong. */
export function parseRuntimePins(text: string): RuntimePins {
  const entries: Record<string, string> = {};
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Z][A-Z0-9_]*)=(\S+)$/.exec(line);
    if (!match) throw new Error(`line ${index + 1} is not KEY=VALUE: ${line}`);
    const [, key, value] = match as unknown as [string, string, string];
    if (key in entries) throw new Error(`line ${index + 1}: ${key} is set twice`);
    entries[key] = value;
  }
  const parsed = RuntimePinsFileSchema.safeParse(entries);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${issue.path.join('.') || 'pins'}: ${issue.message}`);
  }
  const pins = parsed.data;
  return {
    versions: { node: pins.NODE_VERSION, python: pins.PYTHON_VERSION, bash: pins.BASH_VERSION },
    debianRelease: pins.DEBIAN_RELEASE,
  };
}

export function loadRuntimePins(path = RUNTIME_PINS_FILE): RuntimePins {
  try {
    return parseRuntimePins(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read the runtime pins ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** The base image the Dockerfiles' `NODE_IMAGE` argument defaults to for these pins. */
export function nodeImageFor(pins: RuntimePins): string {
  return `node:${pins.versions.node}-${pins.debianRelease}-slim`;
}

/** How each runtime reports its own `major.minor.patch`, run with an empty environment. */
const VERSION_ARGS: Record<Runtime, readonly string[]> = {
  node: ['-p', 'process.versions.node'],
  python: ['-I', '-S', '-c', 'import sys; print("%d.%d.%d" % sys.version_info[:3])'],
  bash: [
    '--norc',
    '--noprofile',
    '-c',
    'echo "${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}"',
  ],
};

/** The versions of the interpreters at `paths` (the very binaries a sandbox would run). */
export async function runtimeVersions(paths: RuntimePaths): Promise<Record<Runtime, string>> {
  const versions = {} as Record<Runtime, string>;
  for (const runtime of RUNTIMES) {
    try {
      const { stdout } = await execFileAsync(paths[runtime], [...VERSION_ARGS[runtime]], {
        timeout: 10_000,
        env: {},
      });
      versions[runtime] = stdout.trim();
    } catch (error) {
      versions[runtime] = `unknown (${(error as Error).message.split('\n')[0]})`;
    }
  }
  return versions;
}

export interface RuntimeDrift {
  runtime: Runtime;
  path: string;
  found: string;
  pinned: string;
}

/** The runtimes whose version differs from its pin (none when all match). */
export function runtimeDrift(
  pins: RuntimePins,
  found: Record<Runtime, string>,
  paths: RuntimePaths,
): RuntimeDrift[] {
  return RUNTIMES.filter((runtime) => found[runtime] !== pins.versions[runtime]).map((runtime) => ({
    runtime,
    path: paths[runtime],
    found: found[runtime],
    pinned: pins.versions[runtime],
  }));
}

/** One line per drifting runtime, for an operator: what runs, from where, and what is pinned. */
export function describeDrift(drift: readonly RuntimeDrift[]): string {
  return drift
    .map((d) => `${d.runtime} ${d.found} at ${d.path}, but ${d.runtime} ${d.pinned} is pinned`)
    .join('; ');
}
