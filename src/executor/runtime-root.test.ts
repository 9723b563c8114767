import assert from 'node:assert/strict';
import {
  chmodSync,
  copyFileSync,
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
  verifyRuntimeRoot,
  type RuntimeRootSpec,
} from './runtime-root.ts';

const scratch = mkdtempSync(join(tmpdir(), 'runtime-root-test-'));
chmodSync(scratch, 0o755); // a prepared root's parents must be traversable by the jail's id
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

function spec(h: string): RuntimeRootSpec {
  return {
    files: [
      { source: join(h, 'bin', 'interp'), target: '/usr/bin/interp' },
      { source: join(h, 'lib'), target: '/usr/lib/rt' },
    ],
    symlinks: [{ link: '/lib', target: 'usr/lib' }],
    generated: { '/etc/passwd': 'nobody:x:65534:65534::/tmp:/bin/false\n' },
    devices: ['/dev/null'],
  };
}

function build(h: string): string {
  return buildRuntimeRoot(spec(h), scratch).path;
}

/** A link function that always fails as across filesystems. */
function crossDevice(): never {
  throw Object.assign(new Error('EXDEV: cross-device link not permitted'), { code: 'EXDEV' });
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
      '/run',
      '/run/mcpworks',
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

describe('buildRuntimeRoot across filesystems', () => {
  test('copies the files when hard links fail and reports the bytes copied', () => {
    const h = host();
    const built = buildRuntimeRoot(spec(h), scratch, { link: crossDevice });
    const inside = statSync(join(built.path, 'usr/bin/interp'));
    assert.notEqual(inside.ino, statSync(join(h, 'bin/interp')).ino);
    assert.equal(readFileSync(join(built.path, 'usr/lib/rt/pkg/mod.py'), 'utf8'), 'x = 1\n');
    assert.equal(built.copiedBytes, 'ELF'.length + 'x = 1\n'.length);
  });

  test('reports no copied bytes when every file is a hard link', () => {
    assert.equal(buildRuntimeRoot(spec(host()), scratch).copiedBytes, 0);
  });

  test('refuses to copy when copies are not allowed, and leaves nothing behind', () => {
    const at = join(mkdtempSync(join(scratch, 'prepared-')), 'python');
    assert.throws(
      () => buildRuntimeRoot(spec(host()), scratch, { at, link: crossDevice, allowCopies: false }),
      /EXDEV/,
    );
    assert.ok(!existsSync(at));
  });
});

describe('verifyRuntimeRoot', () => {
  function prepared(): { h: string; root: string } {
    const h = host();
    const dir = mkdtempSync(join(scratch, 'prepared-'));
    chmodSync(dir, 0o755);
    const root = join(dir, 'python');
    buildRuntimeRoot(spec(h), scratch, { at: root, allowCopies: false });
    return { h, root };
  }

  test('accepts a root built for the same runtime files', () => {
    const { h, root } = prepared();
    assert.equal(verifyRuntimeRoot(spec(h), root), undefined);
  });

  test('refuses a runtime file replaced by a copy with the same bytes', () => {
    const { h, root } = prepared();
    rmSync(join(root, 'usr/lib/rt/pkg/mod.py'));
    copyFileSync(join(h, 'lib/pkg/mod.py'), join(root, 'usr/lib/rt/pkg/mod.py'));
    assert.match(verifyRuntimeRoot(spec(h), root) ?? '', /mod\.py is not a hard link/);
  });

  test('refuses a root holding a file the runtime does not', () => {
    const { h, root } = prepared();
    writeFileSync(join(root, 'usr/bin/extra'), 'planted', { mode: 0o755 });
    assert.match(verifyRuntimeRoot(spec(h), root) ?? '', /\/usr\/bin\/extra is not part/);
  });

  test('refuses a root missing a runtime file', () => {
    const { h, root } = prepared();
    rmSync(join(root, 'usr/lib/rt/pkg/alias.py'));
    assert.match(verifyRuntimeRoot(spec(h), root) ?? '', /alias\.py is missing/);
  });

  test('refuses a generated file with other content', () => {
    const { h, root } = prepared();
    rmSync(join(root, 'etc/passwd'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0::/:/bin/sh\n', { mode: 0o644 });
    assert.match(verifyRuntimeRoot(spec(h), root) ?? '', /\/etc\/passwd does not hold/);
  });

  test('refuses a symlink pointing elsewhere', () => {
    const { h, root } = prepared();
    rmSync(join(root, 'lib'));
    symlinkSync('/', join(root, 'lib'));
    assert.match(verifyRuntimeRoot(spec(h), root) ?? '', /\/lib is not the symlink/);
  });

  test('refuses a directory writable by others', () => {
    const { h, root } = prepared();
    chmodSync(join(root, 'usr/bin'), 0o777);
    assert.match(verifyRuntimeRoot(spec(h), root) ?? '', /\/usr\/bin is writable/);
  });

  test('refuses a root built for runtime files that have since changed', () => {
    const { h, root } = prepared();
    writeFileSync(join(h, 'lib', 'pkg', 'new.py'), 'y = 2\n');
    assert.match(verifyRuntimeRoot(spec(h), root) ?? '', /new\.py is missing/);
  });

  test('refuses a root under a directory the jail cannot traverse', () => {
    const { h, root } = prepared();
    chmodSync(join(root, '..'), 0o700);
    assert.match(verifyRuntimeRoot(spec(h), root) ?? '', /not traversable by the jail's id/);
  });

  test('refuses a root that does not exist', () => {
    assert.match(verifyRuntimeRoot(spec(host()), join(scratch, 'nowhere')) ?? '', /cannot read/);
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

  test('sweeps the egress directories of dead executors the same way, and only those', () => {
    const parent = mkdtempSync(join(scratch, 'parent-'));
    const dead = join(parent, `mcpworks-egress-${deadPid()}-abcDEF`);
    const live = join(parent, `mcpworks-egress-${process.pid}-abcDEF`);
    const root = join(parent, `${ROOT_PREFIX}${deadPid()}-abcDEF`);
    for (const dir of [dead, live, root]) mkdirSync(join(dir, 'sb-x'), { recursive: true });
    assert.equal(removeStaleRuntimeRoots(parent, 'mcpworks-egress-'), 1);
    assert.deepEqual(
      readdirSync(parent).sort(),
      [live, root].map((d) => d.slice(parent.length + 1)).sort(),
    );
  });
});
