/**
 * The attack battery: hostile tool code against the real nsjail sandbox. Every case asserts the
 * typed outcome and, where it matters, checks the host side too (no connection arrived, the
 * host process is still alive, no sandbox process is left behind).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createSandboxExecutor } from '../../src/executor/sandbox-executor.ts';
import { createDirectorySecretSource } from '../../src/executor/secrets.ts';
import { nsjailForTests, toolCall, type CallOverrides } from '../../src/executor/testing.ts';
import type { SandboxExecutor, ToolCallResult } from '../../src/executor/types.ts';
import type { Runtime } from '../../src/api/v1alpha1/mcpserver.ts';

let executor: SandboxExecutor;
let listener: Server;
let listenerPort = 0;
let connections = 0;
let hostDir: string;
/** Secret volumes (`<dir>/<secret>/<key>`) the executor reads tools' secretEnv from. */
let secretsDir: string;
const TOOL_SECRET = 'attack-battery-secret-value-1';
/** Shell syntax a careless bootstrap would run: it must arrive as data. */
const SHELL_SECRET = 'x$(touch /tmp/pwned)`id`;\n"q" \\ $HOME';
const withSecret: CallOverrides = { secretEnv: { TOOL_SECRET: { name: 'battery', key: 'token' } } };

const py = (body: string) => `def main(args):\n${body.replace(/^/gm, '    ')}\n`;

async function call(
  runtime: Runtime,
  code: string,
  overrides: CallOverrides = {},
): Promise<ToolCallResult> {
  return executor.execute(toolCall(runtime, code, overrides));
}

function text(result: ToolCallResult): string {
  return result.content.map((c) => c.text).join('');
}

/** Processes on the host whose command line contains `marker`. */
function hostProcessesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

before(async () => {
  secretsDir = mkdtempSync(join(tmpdir(), 'mcpworks-attack-secrets-'));
  mkdirSync(join(secretsDir, 'battery'));
  writeFileSync(join(secretsDir, 'battery', 'token'), TOOL_SECRET);
  writeFileSync(join(secretsDir, 'battery', 'shell'), SHELL_SECRET);
  executor = await createSandboxExecutor({
    nsjailPath: nsjailForTests(),
    warmPoolSize: 1,
    maxConcurrency: 8,
    secrets: createDirectorySecretSource(secretsDir),
  });
  await executor.probe();
  listener = createServer((socket) => {
    connections += 1;
    socket.end('hello from the host\n');
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  listenerPort = (listener.address() as { port: number }).port;
  hostDir = mkdtempSync(join(tmpdir(), 'mcpworks-attack-'));
});

after(async () => {
  await executor?.close();
  await new Promise<void>((resolve) => listener?.close(() => resolve()));
  if (hostDir) rmSync(hostDir, { recursive: true, force: true });
  if (secretsDir) rmSync(secretsDir, { recursive: true, force: true });
});

describe('network', () => {
  test('python cannot connect to a port the host serves on 127.0.0.1', async () => {
    const before = connections;
    const r = await call(
      'python',
      `import socket\n${py(`s = socket.create_connection(("127.0.0.1", ${listenerPort}), timeout=2)\nreturn s.recv(100).decode()`)}`,
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /PermissionError|ConnectionRefused|unreachable/);
    assert.equal(connections, before);
  });

  test('node cannot connect to a port the host serves on 127.0.0.1', async () => {
    const before = connections;
    const r = await call(
      'node',
      `const net = require('node:net');
       function main() { return new Promise((resolve, reject) => { const s = net.connect(${listenerPort}, '127.0.0.1'); s.on('data', (d) => resolve(String(d))); s.on('error', reject); }); }`,
    );
    assert.equal(r.outcome, 'error');
    assert.equal(connections, before);
  });

  test('bash /dev/tcp cannot reach the host', async () => {
    const before = connections;
    const r = await call('bash', `exec 3<>/dev/tcp/127.0.0.1/${listenerPort} && cat <&3`);
    assert.equal(r.outcome, 'error');
    assert.equal(connections, before);
  });

  test('DNS resolution of a public name fails', async () => {
    const r = await call(
      'python',
      `import socket\n${py('return socket.getaddrinfo("example.com", 443)[0][4][0]')}`,
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /gaierror|PermissionError/);
  });

  test('a tool without egress finds no relay and no proxy socket', async () => {
    const r = await call(
      'python',
      `import os, socket\n${py(
        [
          'out = [os.listdir("/run/mcpworks")]',
          'try:',
          '    socket.create_connection(("127.0.0.1", 3128), timeout=2)',
          '    out.append("relay")',
          'except OSError as e:',
          '    out.append(e.__class__.__name__)',
          'u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
          'try:',
          '    u.connect("/run/mcpworks/egress.sock")',
          '    out.append("proxy")',
          'except OSError as e:',
          '    out.append(e.__class__.__name__)',
          'return out',
        ].join('\n'),
      )}`,
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), [[], 'PermissionError', 'FileNotFoundError']);
    assert.equal(r.egress, undefined);
    const n = await call(
      'node',
      `const net = require('node:net');
       function main() { return new Promise((resolve) => { const s = net.connect(3128, '127.0.0.1'); s.on('connect', () => resolve('relay')); s.on('error', (e) => resolve(e.code)); }); }`,
    );
    assert.equal(n.outcome, 'ok', text(n));
    assert.equal(text(n), 'EPERM');
  });

  test('the jail has no network interface but loopback', async () => {
    const r = await call('python', py('return open("/proc/net/dev").read()'));
    assert.equal(r.outcome, 'ok');
    assert.doesNotMatch(text(r), /eth|ens|veth|wlan/);
  });
});

describe('host files', () => {
  test('/etc/shadow of the host is not there', async () => {
    const r = await call('python', py('return open("/etc/shadow").read()'));
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /FileNotFoundError/);
  });

  test('/etc/passwd is the generated minimal file, not the host one', async () => {
    const r = await call('bash', 'cat /etc/passwd');
    assert.equal(r.outcome, 'ok');
    assert.deepEqual(
      text(r)
        .trim()
        .split('\n')
        .map((l) => l.split(':')[0]),
      ['root', 'nobody'],
    );
  });

  test("the executor's own token file cannot be read", async () => {
    const tokenFile = join(hostDir, 'executor-token');
    writeFileSync(tokenFile, 'super-secret-executor-token', { mode: 0o600 });
    const r = await call('python', py(`return open(${JSON.stringify(tokenFile)}).read()`));
    assert.equal(r.outcome, 'error');
    assert.doesNotMatch(text(r), /super-secret/);
  });

  test('the host home and source tree are absent', async () => {
    const r = await call(
      'python',
      `import os\n${py('return [sorted(os.listdir("/")), os.listdir("/run"), os.listdir("/run/mcpworks")]')}`,
    );
    assert.equal(r.outcome, 'ok');
    const [entries, run, egressMount] = JSON.parse(text(r)) as string[][];
    for (const forbidden of ['root', 'home', 'work', 'var', 'sys'])
      assert.ok(!entries!.includes(forbidden), forbidden);
    // Not the host's /run: only the (here empty) mount point of egress sandboxes' directory.
    assert.deepEqual([run, egressMount], [['mcpworks'], []]);
  });

  test('nothing outside the workspace is writable', async () => {
    const r = await call('python', py('open("/usr/evil", "w").write("x")'));
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /Read-only file system|PermissionError/);
  });

  test('/proc/sys cannot be written', async () => {
    const r = await call(
      'python',
      py('open("/proc/sys/kernel/hostname", "w").write("pwned")\nreturn "written"'),
    );
    assert.equal(r.outcome, 'error');
  });

  test('/proc/self/exe cannot be overwritten', async () => {
    const r = await call(
      'python',
      py('open("/proc/self/exe", "wb").write(b"x")\nreturn "written"'),
    );
    assert.equal(r.outcome, 'error');
  });

  test("a symlink through the jail init's root link still sees only the jail", async () => {
    // /proc/1/<root link>: the init of the jail's pid namespace is the tool itself.
    const r = await call(
      'python',
      `import os\n${py('os.symlink("/proc/1/" + "ro" + "ot/etc/passwd", "/tmp/p")\nreturn open("/tmp/p").read()')}`,
    );
    assert.equal(r.outcome, 'ok');
    assert.doesNotMatch(text(r), /^(?!root|nobody).+:x:/m);
  });

  test('the workspace cannot grow beyond its tmpfs size', async () => {
    const r = await call(
      'python',
      py(
        'f = open("/tmp/big", "wb")\nfor _ in range(64):\n    f.write(b"x" * 1048576)\nf.flush()\nreturn "wrote 64 MiB"',
      ),
      {
        limits: { tmpfsMiB: 8 },
      },
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /No space|File too large|OSError/);
  });
});

describe('isolation between calls', () => {
  test('a file written by one call is not seen by the next', async () => {
    await call('python', py('open("/tmp/left-behind", "w").write("secret")\nreturn "ok"'));
    const r = await call('python', `import os\n${py('return os.listdir("/tmp")')}`);
    assert.equal(r.outcome, 'ok');
    assert.equal(text(r), '[]');
  });

  test('an environment variable set by one call is not seen by the next', async () => {
    await call('python', `import os\n${py('os.environ["LEAK"] = "secret"\nreturn "ok"')}`);
    const r = await call('python', `import os\n${py('return os.environ.get("LEAK", "absent")')}`);
    assert.equal(text(r), 'absent');
  });

  test('a module-level variable does not survive to the next call', async () => {
    const code = `import sys\ncounter = getattr(sys, "_mcpworks_counter", 0) + 1\nsys._mcpworks_counter = counter\n${py('return str(counter)')}`;
    assert.equal(text(await call('python', code)), '1');
    assert.equal(text(await call('python', code)), '1');
    const nodeCode =
      'globalThis.n = (globalThis.n ?? 0) + 1; function main() { return String(globalThis.n) }';
    assert.equal(text(await call('node', nodeCode)), '1');
    assert.equal(text(await call('node', nodeCode)), '1');
  });

  test('a background process started by one call is gone for the next and on the host', async () => {
    const marker = `mcpworks-bg-${process.pid}-${Date.now()}`;
    const first = call(
      'bash',
      `(exec -a ${marker} sleep 30) >/dev/null 2>&1 & sleep 1; echo started`,
    );
    // The background process really runs (seen from the host) while the call is alive …
    for (let i = 0; i < 200 && hostProcessesWith(marker).length === 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.notDeepEqual(hostProcessesWith(marker), [], 'the background process never started');
    assert.equal((await first).outcome, 'ok');
    // … and dies with the sandbox, which is torn down right after the answer.
    for (let i = 0; i < 200 && hostProcessesWith(marker).length > 0; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.deepEqual(hostProcessesWith(marker), []);
    const next = await call('bash', 'ls /proc | grep -c "^[0-9]"');
    assert.equal(next.outcome, 'ok');
    // Only the next call's own processes (bootstrap, script, ls, grep).
    assert.ok(Number(text(next).trim()) <= 4, text(next));
  });

  test('concurrent calls do not see each other’s workspace', async () => {
    const writer = call(
      'python',
      `import time\n${py('open("/tmp/concurrent-secret", "w").write("x")\ntime.sleep(1)\nreturn "done"')}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const reader = await call('python', `import os\n${py('return os.listdir("/tmp")')}`);
    assert.equal(text(reader), '[]');
    assert.equal((await writer).outcome, 'ok');
  });

  test('secrets in the executor environment never reach the code', async () => {
    process.env['MCPWORKS_TEST_SECRET'] = 'do-not-leak';
    try {
      const r = await call('python', `import os\n${py('return dict(os.environ)')}`, {
        env: { DECLARED: 'yes' },
      });
      assert.equal(r.outcome, 'ok');
      assert.deepEqual(Object.keys(r.structuredContent ?? {}).sort(), ['DECLARED', 'LANG', 'PATH']);
    } finally {
      delete process.env['MCPWORKS_TEST_SECRET'];
    }
  });
});

describe('limits', () => {
  test('a python fork bomb stops at the pids limit', async () => {
    const r = await call('python', `import os, time\n${py('while True:\n    os.fork()')}`, {
      limits: { pids: 16 },
      timeoutSeconds: 5,
    });
    assert.equal(r.outcome, 'pids-limit');
  });

  test('a bash fork bomb stops at the pids limit', async () => {
    const r = await call('bash', 'b() { b | b & }; b; wait', {
      limits: { pids: 16 },
      timeoutSeconds: 3,
    });
    assert.equal(r.outcome, 'pids-limit');
  });

  test('a python memory bomb is killed by the memory limit', async () => {
    const r = await call(
      'python',
      py('chunks = []\nwhile True:\n    chunks.append(bytearray(8 * 1024 * 1024))'),
      {
        limits: { memoryMiB: 64 },
      },
    );
    assert.equal(r.outcome, 'memory-limit');
  });

  test('a node memory bomb is killed by the memory limit', async () => {
    const r = await call(
      'node',
      'function main() { const keep = []; for (;;) keep.push(Buffer.alloc(8 * 1024 * 1024, 1)); }',
      { limits: { memoryMiB: 96 } },
    );
    assert.equal(r.outcome, 'memory-limit');
  });

  test('the cpu limit throttles: 50 millicores get at most a twentieth of a CPU', async () => {
    const r = await call(
      'python',
      `import time\n${py('start = time.monotonic()\ncpu = time.process_time()\nwhile time.monotonic() - start < 1.5:\n    pass\nreturn {"cpu": time.process_time() - cpu, "wall": time.monotonic() - start}')}`,
      { limits: { cpuMillicores: 50 } },
    );
    assert.equal(r.outcome, 'ok');
    const { cpu, wall } = r.structuredContent as { cpu: number; wall: number };
    // 5 ms per 100 ms period: ~0.075 s of CPU in 1.5 s of wall time (an unthrottled spin gets
    // several times that even on a loaded 2-core machine).
    assert.ok(cpu / wall < 0.1, `cpu ${cpu.toFixed(3)} s in ${wall.toFixed(3)} s`);
  });

  test('a CPU spin is killed at the timeout', async () => {
    const r = await call('python', py('while True:\n    pass'), { timeoutSeconds: 1 });
    assert.equal(r.outcome, 'timeout');
    assert.ok(r.durationMs < 3000, String(r.durationMs));
  });

  test('a huge return value is cut at maxOutputBytes', async () => {
    const r = await call('python', py('return "x" * (10 * 1024 * 1024)'), {
      limits: { maxOutputBytes: 4096 },
    });
    assert.equal(r.outcome, 'output-truncated');
    assert.ok(text(r).length <= 4096);
    assert.ok(r.outputBytes > 4096);
  });

  test('endless bash output is cut at maxOutputBytes', async () => {
    const r = await call(
      'bash',
      'while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done',
      {
        limits: { maxOutputBytes: 2048 },
      },
    );
    assert.equal(r.outcome, 'output-truncated');
  });

  // stdout/stderr are not the result channel, but a flood of them costs the executor CPU.
  const floods: Array<[Runtime, string]> = [
    [
      'python',
      `import sys\n${py('while True:\n        sys.stdout.write("x" * 65536)\n        sys.stderr.write("y" * 65536)')}`,
    ],
    [
      'node',
      `function main() { const s = 'x'.repeat(65536); for (;;) { process.stdout.write(s); process.stderr.write(s); } }`,
    ],
    ['bash', 'while :; do echo yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy >&2; done'],
  ];
  for (const [runtime, code] of floods) {
    test(`${runtime} flooding its logs is stopped at the log cap and the call says so`, async () => {
      const r = await call(runtime, code, { timeoutSeconds: 20 });
      assert.ok(r.durationMs < 10_000, `stopped at a cap, not the timeout: ${r.durationMs} ms`);
      // Node queues pipe writes in memory when the reader is slower, so its flood may meet the
      // memory limit before the log cap: either stops it, and the record says which.
      if (runtime === 'node' && r.outcome === 'memory-limit') return;
      assert.equal(r.outcome, 'output-truncated', text(r));
      assert.match(text(r), /more than 1048576 bytes of logs/);
    });
  }

  test('a timeout while a background child holds the output pipe open still ends at the timeout', async () => {
    const r = await call('bash', '(sleep 60; echo late) & echo early; sleep 60', {
      timeoutSeconds: 1,
    });
    assert.equal(r.outcome, 'timeout');
    assert.ok(r.durationMs < 3000, String(r.durationMs));
  });

  test('a script that exits while its background child holds stdout returns at once', async () => {
    const r = await call('bash', '(sleep 60; echo late) & echo early', { timeoutSeconds: 10 });
    assert.equal(r.outcome, 'ok');
    assert.equal(text(r).trim(), 'early');
    assert.ok(r.durationMs < 3000, String(r.durationMs));
  });

  test('rlimits cannot be raised', async () => {
    const r = await call(
      'python',
      `import resource\n${py('soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\nresource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))\nreturn "raised"')}`,
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /ValueError|PermissionError/);
  });
});

describe('forbidden system calls', () => {
  const syscall = (nr: number, ...args: number[]) =>
    `import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n${py(`return str(libc.syscall(${[nr, ...args].join(', ')}))`)}`;

  const cases: Array<[string, number, number[]]> = [
    ['ptrace', 101, [0, 0, 0, 0]],
    ['mount', 165, [0, 0, 0, 0, 0]],
    // what could reach the old root left beneath the jail by --no_pivotroot (docs/adr/0004)
    ['umount2', 166, [0, 2]],
    ['chroot', 161, [0]],
    ['pivot_root', 155, [0, 0]],
    ['move_mount', 429, [-1, 0, -1, 0, 0]],
    ['open_tree', 428, [-1, 0, 0]],
    ['fsopen', 430, [0, 0]],
    ['fsconfig', 431, [-1, 0, 0, 0, 0]],
    ['fsmount', 432, [-1, 0, 0]],
    ['fspick', 433, [-1, 0, 0]],
    ['mount_setattr', 442, [-1, 0, 0, 0, 0]],
    ['unshare (new user namespace)', 272, [0x10000000]],
    ['setns', 308, [0, 0]],
    ['clone with namespace flags', 56, [0x10000000 | 17, 0, 0, 0, 0]],
    ['bpf', 321, [0, 0, 0]],
    ['perf_event_open', 298, [0, 0, -1, -1, 0]],
    ['keyctl', 250, [0, 0, 0, 0, 0]],
    ['userfaultfd', 323, [0]],
    ['process_vm_readv', 310, [1, 0, 0, 0, 0, 0]],
    ['kexec_load', 246, [0, 0, 0, 0]],
    ['init_module', 175, [0, 0, 0]],
    ['reboot', 169, [0, 0, 0, 0]],
    ['clock_settime', 227, [0, 0]],
    ['syslog', 103, [0, 0, 0]],
  ];
  for (const [name, nr, args] of cases) {
    test(`${name} kills the tool with a sandbox violation`, async () => {
      const r = await call('python', syscall(nr, ...args));
      assert.equal(r.outcome, 'sandbox-violation', `${name}: ${text(r)}`);
    });
  }

  // Runtimes probe io_uring at start-up (Node 24's libuv does): it must look absent, not kill.
  const ioUring: Array<[string, number, number[]]> = [
    ['io_uring_setup', 425, [16, 0]],
    ['io_uring_enter', 426, [0, 1, 0, 0, 0, 0]],
    ['io_uring_register', 427, [0, 0, 0, 0]],
  ];
  for (const [name, nr, args] of ioUring) {
    test(`${name} answers ENOSYS instead of killing the tool`, async () => {
      const r = await call(
        'python',
        `import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n${py(`return [libc.syscall(${[nr, ...args].join(', ')}), ctypes.get_errno()]`)}`,
      );
      assert.equal(r.outcome, 'ok', `${name}: ${text(r)}`);
      assert.deepEqual(JSON.parse(text(r)), [-1, 38], name);
    });
  }

  // A watch on the shared runtime files would show another call's imports and the pool refill.
  const watches: Array<[string, number, number[]]> = [
    ['inotify_init', 253, []],
    ['inotify_init1', 294, [0]],
    ['fanotify_init', 300, [0, 0]],
  ];
  for (const [name, nr, args] of watches) {
    test(`${name} answers ENOSYS: no watching files other sandboxes share`, async () => {
      const r = await call(
        'python',
        `import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n${py(`return [libc.syscall(${[nr, ...args].join(', ')}), ctypes.get_errno()]`)}`,
      );
      assert.equal(r.outcome, 'ok', `${name}: ${text(r)}`);
      assert.deepEqual(JSON.parse(text(r)), [-1, 38], name);
    });
  }

  test('node fs.watch on a runtime file fails instead of reporting other calls', async () => {
    const r = await call(
      'node',
      `function main() { try { require('fs').watch(process.execPath).close(); return 'watching'; } catch (e) { return e.code; } }`,
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.equal(text(r), 'ENOSYS');
  });

  test('setuid(0) is refused', async () => {
    const r = await call('python', `import os\n${py('os.setuid(0)\nreturn "root"')}`);
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /PermissionError|Invalid argument/);
  });

  test('the code holds no capabilities, no_new_privs is set and a seccomp filter is active', async () => {
    const r = await call(
      'bash',
      'grep -E "^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status',
    );
    assert.equal(r.outcome, 'ok');
    const status = Object.fromEntries(
      text(r)
        .trim()
        .split('\n')
        .map((line) => line.split(/:\s+/) as [string, string]),
    );
    for (const cap of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb'])
      assert.equal(status[cap], '0000000000000000', cap);
    assert.equal(status['NoNewPrivs'], '1');
    assert.equal(status['Seccomp'], '2');
  });

  test('the code runs as 65534 inside and outside the jail', async () => {
    const r = await call('bash', 'echo "$EUID $(tr -s " " < /proc/self/uid_map)"');
    assert.equal(text(r).trim(), '65534  65534 65534 1');
  });
});

describe('processes outside', () => {
  let victim: ChildProcess;
  before(() => {
    victim = spawn('sleep', ['60'], { stdio: 'ignore' });
  });
  after(() => {
    victim.kill('SIGKILL');
  });

  test('a host process cannot be killed from inside', async () => {
    const r = await call(
      'python',
      `import os, signal\n${py(`os.kill(${victim.pid}, signal.SIGKILL)\nreturn "killed"`)}`,
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /ProcessLookupError/);
    assert.equal(victim.exitCode, null);
    assert.equal(victim.signalCode, null);
  });

  test('host processes are invisible in /proc', async () => {
    const r = await call(
      'python',
      `import os\n${py('return [p for p in os.listdir("/proc") if p.isdigit()]')}`,
    );
    assert.deepEqual(JSON.parse(text(r)), ['1']);
  });
});

describe('secrets', () => {
  const scanEverything = [
    'import os',
    'def main(args):',
    '    seen = [repr(dict(os.environ))]',
    '    for pid in os.listdir("/proc"):',
    '        if pid.isdigit():',
    '            for name in ("environ", "cmdline"):',
    '                try: seen.append(open(f"/proc/{pid}/{name}", "rb").read().decode("latin-1"))',
    '                except OSError: pass',
    '    for path in (SECRETS, SECRETS + "/battery/token", "/var/run/mcpworks/secrets"):',
    '        try: seen.append(open(path).read())',
    '        except OSError as e: seen.append(type(e).__name__)',
    '    return "\\n".join(seen)',
  ].join('\n');
  const scanner = () => `SECRETS = ${JSON.stringify(secretsDir)}\n${scanEverything}`;

  test("a tool cannot read another tool's secret, even while that tool's call is running", async () => {
    const holder = call(
      'python',
      'import os, time\ndef main(args):\n    time.sleep(1.5)\n    return len(os.environ["TOOL_SECRET"])',
      withSecret,
    );
    const r = await call('python', scanner());
    assert.equal(r.outcome, 'ok');
    assert.equal(r.redactions, undefined);
    assert.doesNotMatch(text(r), /TOOL_SECRET|attack-battery-secret/);
    assert.match(text(r), /FileNotFoundError/);
    assert.equal(text(await holder), String(TOOL_SECRET.length));
  });

  test("a tool with a secret sees neither the executor's environment nor the Secret files", async () => {
    process.env['MCPWORKS_TEST_CANARY'] = 'executor-env-canary-value';
    try {
      const r = await call('python', scanner(), withSecret);
      assert.equal(r.outcome, 'ok');
      assert.doesNotMatch(text(r), /executor-env-canary-value|MCPWORKS_TEST_CANARY/);
      // Its own value is in its os.environ; the scan returns it, so it comes back redacted.
      assert.ok(!text(r).includes(TOOL_SECRET));
      assert.match(text(r), /\[REDACTED:TOOL_SECRET\]/);
    } finally {
      delete process.env['MCPWORKS_TEST_CANARY'];
    }
  });

  test('a secret written to the workspace by one call is gone for the next', async () => {
    const write = await call(
      'bash',
      'printf %s "$TOOL_SECRET" > /tmp/stash && echo stashed',
      withSecret,
    );
    assert.equal(text(write).trim(), 'stashed');
    const read = await call('bash', 'cat /tmp/stash 2>&1 || echo none');
    assert.match(text(read), /No such file|none/);
  });

  test('a secret holding shell syntax arrives as data, never as code', async () => {
    const r = await call('bash', 'printf %s "$SHELL_VALUE" | sha256sum | cut -d" " -f1; ls /tmp', {
      secretEnv: { SHELL_VALUE: { name: 'battery', key: 'shell' } },
    });
    assert.equal(r.outcome, 'ok');
    const [hash, ...files] = text(r).trim().split('\n');
    assert.equal(hash, createHash('sha256').update(SHELL_SECRET).digest('hex'));
    assert.deepEqual(files, []);
  });

  test('smuggling the secret out through an exception, stderr or a base64 blob is redacted', async () => {
    const r = await call(
      'python',
      'import base64, os, sys\ndef main(args):\n    v = os.environ["TOOL_SECRET"]\n    sys.stderr.write(v)\n    raise RuntimeError(base64.b64encode(("prefix:" + v).encode()).decode())',
      withSecret,
    );
    assert.equal(r.outcome, 'error');
    assert.ok(!text(r).includes(TOOL_SECRET) && !(r.message ?? '').includes(TOOL_SECRET));
    assert.ok(!text(r).includes(Buffer.from(TOOL_SECRET).toString('base64').slice(4, 20)));
    assert.match(r.message ?? '', /\[REDACTED:TOOL_SECRET\]/);
  });

  test('a tool cannot get a secret it does not declare by naming one in its own env', async () => {
    const r = await call(
      'python',
      'import os\ndef main(args):\n    return os.environ.get("TOOL_SECRET", "absent")',
      {
        env: { TOOL_SECRET: 'battery/token' },
      },
    );
    assert.equal(text(r), 'battery/token');
  });
});
