/**
 * A per-runtime root directory, assembled once at executor start, that each jail mounts read-only
 * as its `/` with one bind (nsjail `--chroot`). It holds exactly what the per-file bind mounts used
 * to expose (the runtime's files as `resolveRuntimeLayout` lists them, the generated /etc files,
 * the merged-/usr symlinks) plus empty mount points for /proc, /tmp, /dev/shm and the device
 * nodes. Every jail then makes ~10 mounts instead of ~45 (python) or ~70 (bash).
 *
 * Files are hard links to the host's (same inode, no copy) when the root sits on their
 * filesystem, else copies. Nothing here is ever a mount, so removing the tree only unlinks.
 * Directories are root-owned 0755 and files keep their modes: the jail's 65534 cannot write here
 * even before nsjail remounts the root read-only.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import type { JailLayout } from './nsjail-config.ts';

/** Name prefix of a tree: the owning executor's pid follows, so leftovers can be told apart. */
export const ROOT_PREFIX = 'mcpworks-root-';

/**
 * Mount points nsjail mounts over inside every jail (directories). /run/mcpworks is where an
 * egress sandbox's private directory is bound (src/executor/egress/jail.ts EGRESS_MOUNT); in
 * other sandboxes it stays an empty read-only directory.
 */
export const ROOT_MOUNT_DIRS = ['/proc', '/tmp', '/dev/shm', '/run/mcpworks'] as const;

export interface RuntimeRootSpec {
  /** Host files or directories placed at `target` (directories recursively). */
  files: ReadonlyArray<{ source: string; target: string }>;
  symlinks: JailLayout['symlinks'];
  /** Inside path → file content (the generated /etc files). */
  generated: Readonly<Record<string, string>>;
  /** Inside paths of device nodes bound over empty files (e.g. /dev/null). */
  devices: readonly string[];
}

/** The canonical form of a path inside the jail; refuses relative paths and `..`. */
function insidePath(path: string): string {
  if (!path.startsWith('/') || path.split('/').includes('..'))
    throw new Error(`invalid path inside the jail: ${path}`);
  const normal = posix.normalize(path).replace(/\/+$/, '');
  if (normal === '') throw new Error(`invalid path inside the jail: ${path}`);
  return normal;
}

/** One path of a root, in the order it is created (parents before children). */
export type RootEntry =
  | { kind: 'dir' }
  | { kind: 'symlink'; target: string }
  /** A hard link to `source` (a copy when linking is impossible and copies are allowed). */
  | { kind: 'link'; source: string; dev: number; ino: number; mode: number; size: number }
  /** A setuid/setgid file: always a copy, without the bits. */
  | { kind: 'strip'; source: string; mode: number; size: number }
  | { kind: 'content'; content: string };

/** Inside path ('/'-rooted) → entry, in creation order. */
export type RootPlan = Map<string, RootEntry>;

function setEntry(plan: RootPlan, path: string, entry: RootEntry): void {
  const existing = plan.get(path);
  if (existing && !(existing.kind === 'dir' && entry.kind === 'dir'))
    throw new Error(`two entries for one path inside the jail: ${path}`);
  if (!existing) plan.set(path, entry);
}

function addParents(plan: RootPlan, path: string): void {
  const parts = path.split('/').filter(Boolean);
  for (let i = 1; i < parts.length; i += 1)
    setEntry(plan, `/${parts.slice(0, i).join('/')}`, { kind: 'dir' });
}

function planTree(plan: RootPlan, source: string, target: string): void {
  const stat = lstatSync(source);
  if (stat.isSymbolicLink()) {
    setEntry(plan, target, { kind: 'symlink', target: readlinkSync(source) });
  } else if (stat.isDirectory()) {
    setEntry(plan, target, { kind: 'dir' });
    for (const name of readdirSync(source).sort())
      planTree(plan, join(source, name), `${target}/${name}`);
  } else if (stat.isFile()) {
    // Never a second host path to a setuid/setgid file: those are copied without the bits.
    setEntry(
      plan,
      target,
      (stat.mode & 0o6000) !== 0
        ? { kind: 'strip', source, mode: stat.mode, size: stat.size }
        : { kind: 'link', source, dev: stat.dev, ino: stat.ino, mode: stat.mode, size: stat.size },
    );
  }
  // sockets, fifos and device nodes are never part of a runtime: left out
}

/** Every path the root for `spec` holds, read from the host's files now (nothing is written). */
export function planRuntimeRoot(spec: RuntimeRootSpec): RootPlan {
  const plan: RootPlan = new Map();
  const add = (path: string, entry: RootEntry) => {
    const name = insidePath(path);
    addParents(plan, name);
    setEntry(plan, name, entry);
  };
  for (const { source, target } of spec.files) {
    const name = insidePath(target);
    addParents(plan, name);
    planTree(plan, source, name);
  }
  for (const { link, target } of spec.symlinks) add(link, { kind: 'symlink', target });
  for (const [name, content] of Object.entries(spec.generated))
    add(name, { kind: 'content', content });
  for (const dir of ROOT_MOUNT_DIRS) add(dir, { kind: 'dir' });
  for (const device of spec.devices) add(device, { kind: 'content', content: '' });
  return plan;
}

export interface BuildRootOptions {
  /** Create exactly this directory (must not exist) instead of a fresh one under `parent`. */
  at?: string;
  /**
   * When a hard link is impossible (another filesystem, or protected_hardlinks): copy (default)
   * or fail. Prepared roots never copy: their check compares inodes with the host's files.
   */
  allowCopies?: boolean;
  /** Injectable for tests (default fs.linkSync). */
  link?: (source: string, target: string) => void;
}

export interface BuiltRoot {
  path: string;
  /** Bytes copied because hard links were impossible (setuid files always count). */
  copiedBytes: number;
}

/** Assembles the tree (in a fresh directory under `parent`, or at `options.at`). */
export function buildRuntimeRoot(
  spec: RuntimeRootSpec,
  parent = tmpdir(),
  options: BuildRootOptions = {},
): BuiltRoot {
  const plan = planRuntimeRoot(spec);
  const link = options.link ?? linkSync;
  const allowCopies = options.allowCopies ?? true;
  let root: string;
  if (options.at !== undefined) {
    mkdirSync(options.at, { mode: 0o755 });
    root = options.at;
  } else {
    root = mkdtempSync(join(parent, `${ROOT_PREFIX}${process.pid}-`));
  }
  let copiedBytes = 0;
  const copy = (source: string, target: string, mode: number, size: number) => {
    copyFileSync(source, target);
    chmodSync(target, mode & 0o755);
    copiedBytes += size;
  };
  try {
    // Traversable by the jail's 65534 (nsjail mounts it as that id), writable only by root.
    chmodSync(root, 0o755);
    for (const [name, entry] of plan) {
      const path = join(root, name);
      switch (entry.kind) {
        case 'dir':
          mkdirSync(path, { mode: 0o755 });
          chmodSync(path, 0o755);
          break;
        case 'symlink':
          symlinkSync(entry.target, path);
          break;
        case 'content':
          writeFileSync(path, entry.content, { mode: 0o644 });
          break;
        case 'strip':
          copy(entry.source, path, entry.mode, entry.size);
          break;
        case 'link':
          try {
            link(entry.source, path);
          } catch (error) {
            const code = (error as NodeJS.ErrnoException).code;
            // another filesystem, or hard links refused (protected_hardlinks without CAP_FOWNER)
            if ((code !== 'EXDEV' && code !== 'EPERM') || !allowCopies) throw error;
            copy(entry.source, path, entry.mode, entry.size);
          }
          break;
      }
    }
    return { path: root, copiedBytes };
  } catch (error) {
    removeRuntimeRoot(root);
    throw error;
  }
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function mismatch(name: string, entry: RootEntry, path: string): string | undefined {
  const stat = lstatSync(path);
  const writableByOthers = (stat.mode & 0o022) !== 0;
  switch (entry.kind) {
    case 'dir':
      if (!stat.isDirectory()) return `${name} is not a directory`;
      return writableByOthers ? `${name} is writable by group or others` : undefined;
    case 'symlink':
      if (!stat.isSymbolicLink() || readlinkSync(path) !== entry.target)
        return `${name} is not the symlink to ${entry.target}`;
      return undefined;
    case 'content':
      if (!stat.isFile() || readFileSync(path, 'utf8') !== entry.content)
        return `${name} does not hold the expected content`;
      return writableByOthers ? `${name} is writable by group or others` : undefined;
    case 'link':
      if (!stat.isFile() || stat.dev !== entry.dev || stat.ino !== entry.ino)
        return `${name} is not a hard link to ${entry.source}`;
      return undefined;
    case 'strip':
      if (
        !stat.isFile() ||
        (stat.mode & 0o7777) !== (entry.mode & 0o755) ||
        stat.size !== entry.size ||
        sha256(path) !== sha256(entry.source)
      )
        return `${name} is not a copy of ${entry.source} without setuid/setgid`;
      return undefined;
  }
}

/**
 * Checks that `root` (a prepared root) is exactly what buildRuntimeRoot would assemble for
 * `spec` now, without copies: the same paths and no others, every runtime file the very inode
 * of the host's file (so its bytes are the host's), symlinks with the same targets, generated
 * files with the same content, nothing writable by group or others. Returns the first
 * difference, or undefined when it matches.
 */
export function verifyRuntimeRoot(spec: RuntimeRootSpec, root: string): string | undefined {
  let plan: RootPlan;
  try {
    plan = planRuntimeRoot(spec);
  } catch (error) {
    return `cannot read the runtime files: ${(error as Error).message}`;
  }
  const seen = new Set<string>();
  const walk = (dir: string, prefix: string): string | undefined => {
    for (const name of readdirSync(dir).sort()) {
      const inner = `${prefix}/${name}`;
      const entry = plan.get(inner);
      if (!entry) return `${inner} is not part of the runtime`;
      const path = join(dir, name);
      const problem = mismatch(inner, entry, path);
      if (problem) return problem;
      seen.add(inner);
      if (entry.kind === 'dir') {
        const deeper = walk(path, inner);
        if (deeper) return deeper;
      }
    }
    return undefined;
  };
  try {
    // nsjail binds the root as the jail's id (65534): every directory above it must let others in.
    for (let dir = dirname(resolve(root)); ; dir = dirname(dir)) {
      if ((statSync(dir).mode & 0o001) === 0) return `${dir} is not traversable by the jail's id`;
      if (dir === dirname(dir)) break;
    }
    const top = lstatSync(root);
    if (!top.isDirectory()) return `${root} is not a directory`;
    if ((top.mode & 0o022) !== 0) return `${root} is writable by group or others`;
    const problem = walk(root, '');
    if (problem) return problem;
  } catch (error) {
    return `cannot read it: ${(error as Error).message}`;
  }
  for (const name of plan.keys()) if (!seen.has(name)) return `${name} is missing`;
  return undefined;
}

/** Removes a tree built here (hard links only: the host's files stay). */
export function removeRuntimeRoot(root: string): void {
  rmSync(root, { recursive: true, force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes trees left under `parent` by executors that died without closing (their pid is gone):
 * runtime roots, or with another `prefix` other per-executor trees named `<prefix><pid>-XXXXXX`
 * (the egress directory). Trees of live processes, this one's included, are never touched.
 * Returns how many were removed.
 */
export function removeStaleRuntimeRoots(parent = tmpdir(), prefix = ROOT_PREFIX): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return 0;
  }
  for (const name of names) {
    const match = new RegExp(`^${prefix}(\\d+)-[A-Za-z0-9]{6}$`).exec(name);
    if (!match || alive(Number(match[1]))) continue;
    const path = join(parent, name);
    try {
      if (!lstatSync(path).isDirectory()) continue;
      removeRuntimeRoot(path);
      removed += 1;
    } catch {
      // raced with another executor's sweep, or not ours to remove
    }
  }
  return removed;
}
