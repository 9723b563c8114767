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
import {
  chmodSync,
  copyFileSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { JailLayout } from './nsjail-config.ts';

/** Name prefix of a tree: the owning executor's pid follows, so leftovers can be told apart. */
export const ROOT_PREFIX = 'mcpworks-root-';

/** Mount points nsjail mounts over inside every jail (directories). */
export const ROOT_MOUNT_DIRS = ['/proc', '/tmp', '/dev/shm'] as const;

export interface RuntimeRootSpec {
  /** Host files or directories placed at `target` (directories recursively). */
  files: ReadonlyArray<{ source: string; target: string }>;
  symlinks: JailLayout['symlinks'];
  /** Inside path → file content (the generated /etc files). */
  generated: Readonly<Record<string, string>>;
  /** Inside paths of device nodes bound over empty files (e.g. /dev/null). */
  devices: readonly string[];
}

function inside(root: string, path: string): string {
  if (!path.startsWith('/') || path.split('/').includes('..'))
    throw new Error(`invalid path inside the jail: ${path}`);
  return join(root, path);
}

function ensureDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: 0o755 });
}

function placeFile(source: string, target: string): void {
  try {
    linkSync(source, target);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // another filesystem, or hard links refused (protected_hardlinks without CAP_FOWNER)
    if (code !== 'EXDEV' && code !== 'EPERM') throw error;
    copyFileSync(source, target);
    chmodSync(target, lstatSync(source).mode & 0o755);
  }
}

function placeTree(source: string, target: string): void {
  const stat = lstatSync(source);
  if (stat.isSymbolicLink()) {
    symlinkSync(readlinkSync(source), target);
  } else if (stat.isDirectory()) {
    mkdirSync(target, { mode: 0o755 });
    for (const name of readdirSync(source)) placeTree(join(source, name), join(target, name));
  } else if (stat.isFile()) {
    // Never a second host path to a setuid/setgid file: those are copied without the bits.
    if ((stat.mode & 0o6000) !== 0) {
      copyFileSync(source, target);
      chmodSync(target, stat.mode & 0o755);
    } else {
      placeFile(source, target);
    }
  }
  // sockets, fifos and device nodes are never part of a runtime: left out
}

/** Assembles the tree in a fresh directory under `parent`; returns its path. */
export function buildRuntimeRoot(spec: RuntimeRootSpec, parent = tmpdir()): string {
  const root = mkdtempSync(join(parent, `${ROOT_PREFIX}${process.pid}-`));
  try {
    // Traversable by the jail's 65534 (nsjail mounts it as that id), writable only by root.
    chmodSync(root, 0o755);
    for (const { source, target } of spec.files) {
      const path = inside(root, target);
      ensureDir(dirname(path));
      placeTree(source, path);
    }
    for (const { link, target } of spec.symlinks) {
      const path = inside(root, link);
      ensureDir(dirname(path));
      symlinkSync(target, path);
    }
    for (const [name, content] of Object.entries(spec.generated)) {
      const path = inside(root, name);
      ensureDir(dirname(path));
      writeFileSync(path, content, { mode: 0o644 });
    }
    for (const dir of ROOT_MOUNT_DIRS) ensureDir(inside(root, dir));
    for (const device of spec.devices) {
      const path = inside(root, device);
      ensureDir(dirname(path));
      writeFileSync(path, '', { mode: 0o644 });
    }
    return root;
  } catch (error) {
    removeRuntimeRoot(root);
    throw error;
  }
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
 * Removes trees left under `parent` by executors that died without closing (their pid is gone).
 * Trees of live processes, this one's included, are never touched. Returns how many were removed.
 */
export function removeStaleRuntimeRoots(parent = tmpdir()): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return 0;
  }
  for (const name of names) {
    const match = new RegExp(`^${ROOT_PREFIX}(\\d+)-[A-Za-z0-9]{6}$`).exec(name);
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
