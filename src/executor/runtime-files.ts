/**
 * Finds exactly the host files a runtime needs inside the jail: the real interpreter (never a
 * shim on PATH), its shared libraries (from the dynamic loader's own listing), its standard
 * library, and for bash a small set of everyday utilities. Resolved once at start-up.
 */
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Runtime } from '../api/v1alpha1/mcpserver.ts';
import { ErrorCode, McpworksError } from '../shared/errors.ts';
import type { RuntimePaths } from './types.ts';

const execFileAsync = promisify(execFile);

/**
 * Where the real interpreters live (distribution packages first). The sandbox's node is the node
 * running the executor, as in the image (whose base's /usr/local/bin/node is both): the pinned
 * official binary, never a distribution's older node that happens to sit in /usr/bin.
 */
export const RUNTIME_CANDIDATES: Readonly<Record<keyof RuntimePaths, readonly string[]>> = {
  python: ['/usr/bin/python3', '/usr/local/bin/python3'],
  node: [process.execPath],
  bash: ['/bin/bash', '/usr/bin/bash'],
};

/** The first existing candidate per runtime (never a shim found through PATH). */
export function defaultRuntimePaths(): RuntimePaths {
  const pick = (runtime: keyof RuntimePaths) =>
    RUNTIME_CANDIDATES[runtime].find((path) => existsSync(path)) ?? RUNTIME_CANDIDATES[runtime][0]!;
  return { python: pick('python'), node: pick('node'), bash: pick('bash') };
}

export const DEFAULT_RUNTIME_PATHS: RuntimePaths = defaultRuntimePaths();

/** Utilities a bash tool may call (those present on the host); everything else is absent. */
export const BASH_UTILITIES = [
  'awk',
  'base64',
  'basename',
  'cat',
  'comm',
  'cut',
  'echo',
  'date',
  'dirname',
  'env',
  'expr',
  'false',
  'fold',
  'grep',
  'head',
  'jq',
  'join',
  'ls',
  'md5sum',
  'mkdir',
  'mktemp',
  'nl',
  'od',
  'paste',
  'printf',
  'rev',
  'rm',
  'sed',
  'seq',
  'sha1sum',
  'sha256sum',
  'sleep',
  'sort',
  'tac',
  'tail',
  'tee',
  'test',
  'timeout',
  'touch',
  'tr',
  'true',
  'uniq',
  'wc',
  'xargs',
] as const;

export interface RuntimeLayout {
  runtime: Runtime;
  /** Absolute path of the interpreter inside the jail (the host's real binary, same path). */
  interpreter: string;
  readOnlyBinds: Array<{ source: string; target: string }>;
}

/** `source` is the real file; `target` keeps the name callers use, under real parent directories. */
function bindFor(path: string): { source: string; target: string } {
  return { source: realpathSync(path), target: join(realpathSync(dirname(path)), basename(path)) };
}

async function sharedLibraries(...binaries: string[]): Promise<string[]> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync('ldd', binaries, {
      timeout: 30_000,
      maxBuffer: 16 * 1024 * 1024,
    }));
  } catch (error) {
    // ldd exits non-zero when any file is static ("not a dynamic executable"); the rest is still listed.
    const e = error as { stdout?: string; stderr?: string };
    const out = String(e.stdout ?? '') + String(e.stderr ?? '');
    if (!/not a dynamic executable|statically linked/.test(out)) throw error;
    stdout = String(e.stdout ?? '');
  }
  const libraries: string[] = [];
  for (const line of stdout.split('\n')) {
    if (line.includes('not found')) throw new Error(`missing library: ${line.trim()}`);
    const arrow = /=>\s*(\/\S+)/.exec(line);
    const bare = /^\s*(\/\S+)\s+\(/.exec(line);
    const path = arrow?.[1] ?? bare?.[1];
    if (path !== undefined) libraries.push(path);
  }
  return libraries;
}

async function binaryWithLibraries(
  path: string,
): Promise<Array<{ source: string; target: string }>> {
  const binds = [bindFor(path)];
  for (const library of await sharedLibraries(realpathSync(path))) binds.push(bindFor(library));
  return binds;
}

function dedupe(
  binds: Array<{ source: string; target: string }>,
): Array<{ source: string; target: string }> {
  const byTarget = new Map<string, { source: string; target: string }>();
  for (const bind of binds) byTarget.set(bind.target, bind);
  return [...byTarget.values()].sort((a, b) => a.target.localeCompare(b.target));
}

async function pythonStdlib(interpreter: string): Promise<string> {
  const { stdout } = await execFileAsync(
    interpreter,
    ['-I', '-S', '-c', 'import sys, sysconfig; print(sysconfig.get_path("stdlib"))'],
    { timeout: 10_000, env: {} },
  );
  const stdlib = stdout.trim();
  if (!stdlib.startsWith('/') || !statSync(stdlib).isDirectory())
    throw new Error(`no python stdlib at ${stdlib}`);
  return realpathSync(stdlib);
}

export async function resolveRuntimeLayout(
  runtime: Runtime,
  paths: RuntimePaths,
): Promise<RuntimeLayout> {
  const configured = paths[runtime];
  try {
    if (!existsSync(configured)) throw new Error(`${configured} does not exist`);
    const interpreter = realpathSync(configured);
    const binds = await binaryWithLibraries(interpreter);
    if (runtime === 'python') {
      const stdlib = await pythonStdlib(interpreter);
      binds.push({ source: stdlib, target: stdlib });
      // Extension modules (ctypes, ssl, hashlib, sqlite3, …) bring their own libraries.
      const dynload = join(stdlib, 'lib-dynload');
      if (existsSync(dynload)) {
        const modules = readdirSync(dynload)
          .filter((f) => f.endsWith('.so'))
          .map((f) => join(dynload, f));
        if (modules.length > 0)
          for (const library of await sharedLibraries(...modules)) binds.push(bindFor(library));
      }
    }
    if (runtime === 'bash') {
      for (const name of BASH_UTILITIES) {
        const path = join(realpathSync('/usr/bin'), name);
        if (existsSync(path)) binds.push(...(await binaryWithLibraries(path)));
      }
    }
    return { runtime, interpreter, readOnlyBinds: dedupe(binds) };
  } catch (error) {
    throw new McpworksError(
      ErrorCode.SandboxUnavailable,
      `runtime ${runtime} is not usable: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** Top-level symlinks of merged-/usr systems (/bin → usr/bin, /lib64 → usr/lib64, …) to mirror inside. */
export function rootSymlinks(): Array<{ link: string; target: string }> {
  const links: Array<{ link: string; target: string }> = [];
  for (const name of ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']) {
    try {
      if (lstatSync(name).isSymbolicLink()) links.push({ link: name, target: readlinkSync(name) });
    } catch {
      // absent on this system
    }
  }
  return links;
}
