// Helpers to run real interpreters inside a real nsjail in tests and benchmarks. The production
// sandbox configuration lives in src/executor; this is only the minimum needed to prove that
// nsjail works on the machine: fresh namespaces, an unprivileged uid, read-only binds of exactly
// what an interpreter needs, and no network.
import { execFile, execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  linkSync,
  mkdtempSync,
  openSync,
  readSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';

export const NAMESPACES = ['user', 'pid', 'mnt', 'net', 'ipc', 'uts', 'cgroup'] as const;
export const NOBODY = 65534;

function isElf(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const magic = Buffer.alloc(4);
    return readSync(fd, magic, 0, 4, 0) === 4 && magic.toString('latin1') === '\x7fELF';
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The real binary of an interpreter (not a pyenv/nvm shell shim) whose resolved path is an ELF
 * executable. For node, the one running the tests, which is the sandbox's node as in the executor
 * (the pinned Node of sandbox-image/runtimes.env; a distribution's /usr/bin/node may be older);
 * for python the usual system locations, then $PATH.
 */
export function findInterpreter(name: 'python3' | 'node', env = process.env): string {
  const candidates =
    name === 'node'
      ? [process.execPath]
      : [
          `/usr/bin/${name}`,
          `/usr/local/bin/${name}`,
          ...(env.PATH ?? '').split(delimiter).map((d) => join(d, name)),
        ];
  for (const c of candidates) {
    try {
      const real = realpathSync(c);
      if (isElf(real)) return real;
    } catch {
      // not there
    }
  }
  throw new Error(`no ${name} executable (ELF, not a shim) found in ${candidates.join(', ')}`);
}

/** Read-only bind arguments for the binary's shared libraries and ELF interpreter, via ldd. */
export function sharedLibraryMounts(bin: string): string[] {
  const out = execFileSync('ldd', [bin], { encoding: 'utf8' });
  const paths = new Set<string>();
  for (const m of out.matchAll(/(?:=>\s*|^\s*)(\/\S+)/gm)) paths.add(m[1] as string);
  return [...paths].flatMap((p) => ['-R', `${realpathSync(p)}:${p}`]);
}

/** Read-only binds a Python interpreter needs: the binary, its libraries and its stdlib. */
export function pythonMounts(python: string): string[] {
  const stdlib = execFileSync(
    python,
    ['-c', 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'],
    { encoding: 'utf8' },
  ).trim();
  return ['-R', python, '-R', stdlib, ...sharedLibraryMounts(python)];
}

/** Whether the jail's id (mounting from inside its user namespace) can reach `path`. */
function traversableByOthers(path: string): boolean {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (dir === dirname(dir)) return true;
  }
}

/**
 * A path to `file` that the jail's id can reach: the file itself, or a hard link (else a copy) in
 * a fresh 0755 directory, removed when the process exits. The pinned node lives in a cache under
 * the home directory, which is often 0700 (nsjail then fails to bind it: "try 'chmod o+x'").
 */
function reachableByJail(file: string): string {
  if (traversableByOthers(file)) return file;
  const dir = mkdtempSync(join(tmpdir(), 'mcpworks-jail-bin-'));
  chmodSync(dir, 0o755);
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const staged = join(dir, basename(file));
  try {
    linkSync(file, staged);
  } catch {
    copyFileSync(file, staged);
    chmodSync(staged, 0o755);
  }
  return staged;
}

/** Read-only binds a Node.js binary needs (at its own path inside the jail). */
export function nodeMounts(node: string): string[] {
  return ['-R', `${reachableByJail(node)}:${node}`, ...sharedLibraryMounts(node)];
}

/**
 * nsjail arguments for one run: standalone once, new user/pid/mnt/net/ipc/uts/cgroup namespaces
 * (nsjail's defaults, none disabled), uid/gid 65534 inside mapped to 65534 outside, an empty
 * tmpfs root with only `mounts`, a cleared environment and a wall-clock limit.
 */
export function jailArgs(mounts: string[], command: string[], timeLimitSeconds = 20): string[] {
  return [
    '--mode',
    'o',
    '--really_quiet',
    '--user',
    `${NOBODY}:${NOBODY}:1`,
    '--group',
    `${NOBODY}:${NOBODY}:1`,
    '--hostname',
    'mcpworks-smoke',
    '--time_limit',
    String(timeLimitSeconds),
    // V8 reserves far more address space than it uses; the 4 GiB default breaks node.
    '--rlimit_as',
    'inf',
    ...mounts,
    '--',
    ...command,
  ];
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command and collects its output; never rejects on a non-zero exit. */
export function run(
  bin: string,
  args: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const options = { timeout: opts.timeoutMs ?? 30_000, env: opts.env ?? process.env };
  return new Promise((resolve, reject) => {
    execFile(bin, args, { ...options, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        if (err.killed || err.signal) resolve({ code: null, stdout, stderr });
        else reject(err);
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}
