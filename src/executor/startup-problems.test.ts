import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { cgroupCreateProblem } from './cgroups.ts';
import { explainJailFailure, startupProblem } from './startup-problems.ts';

const errno = (code: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: failed`), { code });

describe('start-up problems say what is missing and which pod setting fixes it', () => {
  test('a missing capability names it and the capabilities to add', () => {
    const message = startupProblem.missingCapabilities(['SYS_CHROOT']);
    assert.match(message, /^missing capability: .* lacks CAP_SYS_CHROOT/);
    assert.match(message, /add: \[SYS_ADMIN, SETUID, SETGID, SYS_CHROOT\]/);
  });

  test('a refused /proc mount names the masked paths and the fixes', () => {
    const message = startupProblem.procMountRefused('/opt/mcpworks/proc', 'permission denied', [
      '/proc/acpi',
      '/proc/keys',
      '/proc/kcore',
      '/proc/sys',
    ]);
    assert.match(message, /^\/proc mount refused: /);
    assert.match(message, /\/proc\/acpi, \/proc\/keys, \/proc\/kcore, …/);
    assert.match(message, /appArmorProfile\.type: Unconfined/);
    assert.match(message, /procMount: Unmasked/);
  });

  test('EROFS from the cgroupfs is a read-only cgroupfs, with the pod settings that fix it', () => {
    const message = cgroupCreateProblem('/sys/fs/cgroup/memory/x', errno('EROFS'), 'v1', false);
    assert.match(message, /^read-only cgroupfs: \/sys\/fs\/cgroup\/memory\/x is mounted read-only/);
    assert.match(message, /cgroup_writable/);
  });

  test('EACCES on cgroup v1 in a user namespace: the limits cannot be applied there', () => {
    const message = cgroupCreateProblem('/sys/fs/cgroup/memory/x', errno('EACCES'), 'v1', true);
    assert.match(message, /^cgroup v1 limits cannot be applied in a user-namespaced pod/);
    assert.match(message, /securityMode Standard/);
  });

  test('on cgroup v2 a refusal is a cgroup that is not delegated to the executor', () => {
    const message = cgroupCreateProblem(
      '/sys/fs/cgroup/mcpworks-executor',
      errno('EACCES'),
      'v2',
      true,
    );
    assert.match(message, /^cannot take over the cgroup v2 subtree/);
  });

  test('anything else keeps the path and the error code', () => {
    const message = cgroupCreateProblem('/sys/fs/cgroup/pids/x', errno('ENOSPC'), 'v1', false);
    assert.equal(
      message,
      "cannot create the executor's cgroup /sys/fs/cgroup/pids/x (ENOSPC: ENOSPC: failed)",
    );
  });
});

describe("explainJailFailure reads nsjail's own log", () => {
  test('pivot_root refused by the runtime seccomp profile (as logged in a pod)', () => {
    const log =
      "[E][2026-12-03T12:11:52+0000][1] initCloneNs():285 pivot_root('/tmp/nsjail.0.root', '/tmp/nsjail.0.root'): Operation not permitted\n" +
      "[E][2026-12-03T12:11:52+0000][636] standaloneMode():274 Couldn't launch the child process\n";
    assert.match(explainJailFailure(log) ?? '', /^pivot_root refused: .*--no-pivot-root/);
  });

  test("the sandbox's /proc refused under a masked /proc", () => {
    const log =
      "[W][1] mountSinglePoint():220 mount('none' -> '/tmp/nsjail.0.root/proc'): procfs mount may fail if /proc has overmounts (e.g., /dev/null on /proc/kcore): Operation not permitted\n" +
      "[F][1] mountAll():437 Failed to mount mandatory point: '/proc'\n";
    assert.match(explainJailFailure(log) ?? '', /^\/proc mount refused: /);
  });

  test('chroot refused without CAP_SYS_CHROOT (the shape of an nsjail message; start-up checks the capability first)', () => {
    const log = "[E][1] initCloneNs():279 chroot('/tmp/nsjail.0.root'): Operation not permitted\n";
    assert.match(explainJailFailure(log) ?? '', /^chroot refused: .*SYS_CHROOT/);
  });

  test('an unknown log explains nothing (the generic self-test failure stands)', () => {
    assert.equal(explainJailFailure('[E] something new'), undefined);
  });
});

describe('docs/troubleshooting.md quotes every start-up problem verbatim', () => {
  const page = readFileSync(
    fileURLToPath(new URL('../../docs/troubleshooting.md', import.meta.url)),
    'utf8',
  );
  // The placeholders as the page writes them.
  const messages = [
    startupProblem.missingCapabilities(['<name>' as never]),
    startupProblem.mountToolMissing(['/usr/bin/mount', '/bin/mount']),
    startupProblem.procDirMissing('/opt/mcpworks/proc', ['<paths>']),
    startupProblem.procMaskedInUserNamespace(['<paths>']),
    startupProblem.procMountRefused('/opt/mcpworks/proc', "<mount's error>", ['<paths>']),
    startupProblem.cgroupReadOnly('<path>', "<mount's error>"),
    startupProblem.cgroupV1InUserNamespace('<path>', 'EACCES'),
    startupProblem.cgroupV2NotDelegated('<path>', '<code>'),
    explainJailFailure("pivot_root('/r', '/r'): Operation not permitted"),
    explainJailFailure("chroot('/r'): Operation not permitted"),
    explainJailFailure('write(/proc/self/uid_map): Operation not permitted'),
    explainJailFailure('clone(flags=CLONE_NEWUSER): Operation not permitted'),
    explainJailFailure("mount('none' -> '/r/proc'): procfs mount may fail if /proc has overmounts"),
  ];
  for (const message of messages) {
    test(String(message).slice(0, 60), () => {
      assert.ok(message !== undefined);
      assert.ok(page.includes(`\`${message}\``), `not on the page: ${message}`);
    });
  }
});
