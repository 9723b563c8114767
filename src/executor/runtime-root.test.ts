import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  buildRuntimeRoot,
  removeRuntimeRoot,
  removeStaleRuntimeRoots,
  ROOT_PREFIX,
} from './runtime-root.ts';

const scratch = mkdtempSync(join(tmpdir(), 'runtime-root-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A fake host: an interpreter, a library directory with a symlink, and an unrelated file. */
function host(): string {
  const dir = mkdtempSync(join(scratch, 'host-'));
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin', 'interp'), 'ELF', { mode: 0o755 });
  mkdirSync(join(dir, 'lib', 'pkg'), { recursive: true });
  writeFileSync(join(dir, 'lib', 'pkg', 'mod.py'), 'x = 1\n');
  symlinkSync('mod.py', join(dir, 'lib', 'pkg', 'alias.py'));
  writeFileSync(join(dir, 'secret'), 'host only');
  return dir;
}

function build(h: string): string {
  return buildRuntimeRoot(
    {
      files: [
        { source: join(h, 'bin', 'interp'), target: '/usr/bin/interp' },
        { source: join(h, 'lib'), target: '/usr/lib/rt' },
      ],
      symlinks: [{ link: '/lib', target: 'usr/lib' }],
      generated: { '/etc/passwd': 'nobody:x:65534:65534::/tmp:/bin/false\n' },
      devices: ['/dev/null'],
    },
    scratch,
  );
}

describe('buildRuntimeRoot', () => {
  test('holds exactly the listed files, symlinks, generated files and mount points', () => {
    const root = build(host());
    const all: string[] = [];
    const walk = (dir: string, prefix: string) => {
      for (const name of readdirSync(dir).sort()) {
        const path = join(dir, name);
        all.push(`${prefix}/${name}`);
        if (lstatSync(path).isDirectory()) walk(path, `${prefix}/${name}`);
      }
    };
    walk(root, '');
    assert.deepEqual(all.sort(), [
      '/dev',
      '/dev/null',
      '/dev/shm',
      '/etc',
      '/etc/passwd',
      '/lib',
      '/proc',
      '/tmp',
      '/usr',
      '/usr/bin',
      '/usr/bin/interp',
      '/usr/lib',
      '/usr/lib/rt',
      '/usr/lib/rt/pkg',
      '/usr/lib/rt/pkg/alias.py',
      '/usr/lib/rt/pkg/mod.py',
    ]);
    assert.equal(readlinkSync(join(root, 'lib')), 'usr/lib');
    assert.equal(readlinkSync(join(root, 'usr/lib/rt/pkg/alias.py')), 'mod.py');
    assert.equal(readFileSync(join(root, 'etc/passwd'), 'utf8').split(':')[0], 'nobody');
  });

  test('links the host files (same inode, same mode) instead of copying them', () => {
    const h = host();
    const root = build(h);
    const inside = statSync(join(root, 'usr/bin/interp'));
    const outside = statSync(join(h, 'bin/interp'));
    assert.equal(inside.ino, outside.ino);
    assert.equal(inside.mode & 0o7777, 0o755);
  });

  test('makes the root traversable and writable by its owner only', () => {
    const root = build(host());
    assert.equal(statSync(root).mode & 0o777, 0o755);
    assert.equal(statSync(join(root, 'usr')).mode & 0o777, 0o755);
  });

  test('never makes a second path to a setuid file: it is copied without the bit', () => {
    const h = host();
    chmodSync(join(h, 'bin', 'interp'), 0o4755);
    const root = build(h);
    const inside = statSync(join(root, 'usr/bin/interp'));
    assert.notEqual(inside.ino, statSync(join(h, 'bin/interp')).ino);
    assert.equal(inside.mode & 0o7777, 0o755);
  });

  test('rejects a target that climbs out of the root', () => {
    const h = host();
    assert.throws(
      () =>
        buildRuntimeRoot(
          {
            files: [{ source: join(h, 'secret'), target: '/../secret' }],
            symlinks: [],
            generated: {},
            devices: [],
          },
          scratch,
        ),
      /invalid path/,
    );
  });

  test('removal unlinks the tree and leaves the host files', () => {
    const h = host();
    const root = build(h);
    removeRuntimeRoot(root);
    assert.ok(!existsSync(root));
    assert.equal(readFileSync(join(h, 'bin', 'interp'), 'utf8'), 'ELF');
  });
});

describe('removeStaleRuntimeRoots', () => {
  /** A pid that is not running: a child that has exited and been reaped. */
  function deadPid(): number {
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
    return Number(child.stdout.toString());
  }

  test('removes the trees of dead executors and keeps those of live ones', () => {
    const parent = mkdtempSync(join(scratch, 'parent-'));
    const dead = join(parent, `${ROOT_PREFIX}${deadPid()}-abcDEF`);
    const live = join(parent, `${ROOT_PREFIX}${process.pid}-abcDEF`);
    const other = join(parent, 'mcpworks-root-unrelated');
    for (const dir of [dead, live, other]) mkdirSync(join(dir, 'usr'), { recursive: true });
    assert.equal(removeStaleRuntimeRoots(parent), 1);
    assert.deepEqual(
      readdirSync(parent).sort(),
      [live, other].map((d) => d.slice(parent.length + 1)).sort(),
    );
  });
});
