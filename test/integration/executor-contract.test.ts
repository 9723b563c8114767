/**
 * The function contract per runtime, against the real nsjail: arguments in, result out as MCP
 * content, errors as isError with a useful message, and the same answers from warm and cold
 * sandboxes.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  rmdirSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EXECUTOR_CGROUP, detectCgroups } from '../../src/executor/cgroups.ts';
import {
  createSandboxExecutor,
  prepareRuntimeRoots,
  warmPoolOf,
} from '../../src/executor/sandbox-executor.ts';
import { nsjailForTests, toolCall, TEST_LIMITS } from '../../src/executor/testing.ts';
import type { SandboxExecutor, ToolCallResult } from '../../src/executor/types.ts';
import { ErrorCode, isMcpworksError } from '../../src/shared/errors.ts';
import { createLogger } from '../../src/shared/logger.ts';

let executor: SandboxExecutor;

const text = (r: ToolCallResult) => r.content.map((c) => c.text).join('');

before(async () => {
  executor = await createSandboxExecutor({
    nsjailPath: nsjailForTests(),
    warmPoolSize: 1,
    maxConcurrency: 4,
  });
  await executor.probe();
});
after(async () => {
  await executor?.close();
});

describe('python', () => {
  test('a dict result becomes structuredContent and its JSON text', async () => {
    const r = await executor.execute(
      toolCall('python', 'def main(args):\n    return {"sum": args["a"] + args["b"]}', {
        args: { a: 2, b: 3 },
      }),
    );
    assert.equal(r.outcome, 'ok');
    assert.equal(r.isError, false);
    assert.deepEqual(r.structuredContent, { sum: 5 });
    assert.deepEqual(JSON.parse(text(r)), { sum: 5 });
  });

  test('a string result becomes text content', async () => {
    const r = await executor.execute(
      toolCall('python', 'def main(args):\n    return "héllo " + args["name"]', {
        args: { name: 'wörld' },
      }),
    );
    assert.equal(text(r), 'héllo wörld');
    assert.equal(r.structuredContent, undefined);
  });

  test('an exception is an error with its type, message and line', async () => {
    const r = await executor.execute(
      toolCall('python', 'def main(args):\n    x = 1\n    raise KeyError("missing")'),
    );
    assert.equal(r.outcome, 'error');
    assert.equal(r.isError, true);
    assert.equal(text(r), "KeyError: 'missing' (line 3)");
  });

  test('a syntax error names the line', async () => {
    const r = await executor.execute(toolCall('python', 'def main(args)\n    return 1'));
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /^SyntaxError: .*\(line 1\)$/);
  });

  test('code without main(args) is an error', async () => {
    const r = await executor.execute(toolCall('python', 'x = 1'));
    assert.match(text(r), /defines no function main\(args\)/);
  });

  test('a result that is not JSON-serializable is an error', async () => {
    const r = await executor.execute(
      toolCall('python', 'def main(args):\n    return {"s": {1, 2}}'),
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /not JSON-serializable/);
  });

  test('sys.exit inside main is an error, not a crash', async () => {
    const r = await executor.execute(
      toolCall('python', 'import sys\ndef main(args):\n    sys.exit(3)'),
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /SystemExit/);
  });

  test('print output does not corrupt the result', async () => {
    const r = await executor.execute(
      toolCall('python', 'def main(args):\n    print("noise", flush=True)\n    return [1, 2]'),
    );
    assert.equal(text(r), '[1,2]');
  });

  test('declared environment variables are visible', async () => {
    const r = await executor.execute(
      toolCall('python', 'import os\ndef main(args):\n    return os.environ["API_BASE"]', {
        env: { API_BASE: 'https://example.test' },
      }),
    );
    assert.equal(text(r), 'https://example.test');
  });
});

describe('node', () => {
  test('an object result becomes structuredContent', async () => {
    const r = await executor.execute(
      toolCall('node', 'function main(args) { return { doubled: args.n * 2 }; }', {
        args: { n: 21 },
      }),
    );
    assert.deepEqual(r.structuredContent, { doubled: 42 });
  });

  test('an async main is awaited', async () => {
    const r = await executor.execute(
      toolCall(
        'node',
        'async function main(args) { await new Promise((r) => setTimeout(r, 20)); return "late " + args.x; }',
        {
          args: { x: 'ok' },
        },
      ),
    );
    assert.equal(text(r), 'late ok');
  });

  test('a thrown error is an error with its name and message', async () => {
    const r = await executor.execute(
      toolCall('node', 'function main() {\n  throw new RangeError("too big");\n}'),
    );
    assert.equal(r.outcome, 'error');
    assert.equal(text(r), 'RangeError: too big (line 2)');
  });

  test('module.exports.main works too', async () => {
    const r = await executor.execute(
      toolCall('node', 'module.exports.main = (args) => args.v;', { args: { v: 'exported' } }),
    );
    assert.equal(text(r), 'exported');
  });

  test('module.exports = <a function of any name, or none> works, as the samples document', async () => {
    for (const code of [
      'module.exports = function (args) { return args.v; };',
      'module.exports = (args) => args.v;',
      'module.exports = async function handler(args) { return args.v; };',
      'function main(args) { return args.v; }\nmodule.exports = main;',
    ]) {
      const r = await executor.execute(toolCall('node', code, { args: { v: 'exported' } }));
      assert.equal(text(r), 'exported', code);
    }
  });

  test('node code that neither defines nor exports a function is an error that says how', async () => {
    const r = await executor.execute(toolCall('node', 'module.exports = 42;'));
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /defines no function main\(args\) and exports none/);
  });

  test('node built-in modules are available', async () => {
    const r = await executor.execute(
      toolCall(
        'node',
        'const { createHash } = require("node:crypto"); function main() { return createHash("sha256").update("a").digest("hex"); }',
      ),
    );
    assert.equal(text(r), 'ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb');
  });
});

describe('bash', () => {
  test('arguments arrive on stdin and in ARGS_JSON; stdout is the result', async () => {
    const r = await executor.execute(
      toolCall(
        'bash',
        'stdin=$(cat); echo "stdin=$stdin env=$ARGS_JSON"; jq -r .name <<<"$ARGS_JSON"',
        { args: { name: 'ada' } },
      ),
    );
    assert.equal(r.outcome, 'ok');
    assert.equal(text(r), 'stdin={"name":"ada"} env={"name":"ada"}\nada\n');
  });

  test('a non-zero exit is an error with stderr in the message', async () => {
    const r = await executor.execute(toolCall('bash', 'echo "no such thing" >&2; exit 7'));
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /exited with status 7/);
    assert.match(text(r), /no such thing/);
  });

  test('declared environment variables are exported', async () => {
    const r = await executor.execute(
      toolCall('bash', 'printf %s "$REGION"', { env: { REGION: 'eu-west' } }),
    );
    assert.equal(text(r), 'eu-west');
  });

  test('common utilities are available, and only those', async () => {
    const r = await executor.execute(
      toolCall(
        'bash',
        'echo b a | tr " " "\\n" | sort | paste -sd,; command -v curl wget nc python3 || true',
      ),
    );
    assert.equal(text(r), 'a,b\n');
  });
});

describe('warm and cold', () => {
  test('a warm sandbox is used when one with the same limits is ready', async () => {
    await warmPoolOf(executor)!.whenFilled();
    const r = await executor.execute(
      toolCall('python', 'def main(args):\n    return "warm?"', {
        limits: {
          ...TEST_LIMITS,
          memoryMiB: 256,
          pids: 64,
          tmpfsMiB: 64,
          maxOutputBytes: 1024 * 1024,
        },
      }),
    );
    assert.equal(r.executor.endsWith('/warm'), true, r.executor);
  });

  test('a call whose limits differ from the warm ones never takes a warm sandbox with other limits', async () => {
    await warmPoolOf(executor)!.whenFilled();
    const r = await executor.execute(
      toolCall('python', 'def main(args):\n    return "x"', {
        limits: { memoryMiB: 48, pids: 7, tmpfsMiB: 3 },
      }),
    );
    assert.equal(r.executor.endsWith('/cold'), true, r.executor);
  });

  test('a warm sandbox enforces the memory limit of its key', async () => {
    const limits = { memoryMiB: 64 };
    await executor.execute(toolCall('python', 'def main(args):\n    return 1', { limits }));
    await warmPoolOf(executor)!.whenFilled();
    const r = await executor.execute(
      toolCall(
        'python',
        'def main(args):\n    b = []\n    while True:\n        b.append(bytearray(8 << 20))',
        { limits },
      ),
    );
    assert.equal(r.executor.endsWith('/warm'), true, r.executor);
    assert.equal(r.outcome, 'memory-limit');
  });
});

describe('requests', () => {
  test('an invalid request is rejected with InvalidInput before any sandbox starts', async () => {
    const bad = { ...toolCall('python', 'def main(a):\n    return 1'), callId: '' };
    await assert.rejects(executor.execute(bad), (error) => isMcpworksError(error, 'InvalidInput'));
  });

  test('beyond maxConcurrency a call is refused as overloaded, not queued', async () => {
    const slow = Array.from({ length: 4 }, () =>
      executor.execute(
        toolCall('python', 'import time\ndef main(args):\n    time.sleep(1)\n    return 1'),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    const refused = await executor.execute(toolCall('python', 'def main(args):\n    return 1'));
    assert.equal(refused.outcome, 'overloaded');
    assert.equal(refused.isError, true);
    for (const r of await Promise.all(slow)) assert.equal(r.outcome, 'ok');
  });

  test('an aborted call is stopped', async () => {
    const controller = new AbortController();
    const pending = executor.execute(
      toolCall('python', 'import time\ndef main(args):\n    time.sleep(30)', {
        timeoutSeconds: 30,
      }),
      controller.signal,
    );
    setTimeout(() => controller.abort(), 200);
    const r = await pending;
    assert.equal(r.isError, true);
    assert.ok(r.durationMs < 5000);
  });
});

describe('bash framing', () => {
  test('a NUL character in a bash call is refused before any sandbox starts', async () => {
    const r = await executor.execute(toolCall('bash', 'echo hi', { env: { BAD: 'a\0b' } }));
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /NUL/);
    assert.equal(r.durationMs, 0);
  });

  test('python can copy files with metadata in the workspace (xattr reads allowed)', async () => {
    const r = await executor.execute(
      toolCall(
        'python',
        'import shutil\ndef main(args):\n    open("/tmp/a", "w").write("x")\n    shutil.copy2("/tmp/a", "/tmp/b")\n    return open("/tmp/b").read()',
      ),
    );
    assert.equal(text(r), 'x');
  });
});

describe('ordinary programs work inside the allowlist', () => {
  test('python subprocess of its own interpreter', async () => {
    const r = await executor.execute(
      toolCall(
        'python',
        'import subprocess, sys\ndef main(args):\n    return subprocess.run([sys.executable, "-c", "print(6*7)"], capture_output=True, text=True).stdout.strip()',
      ),
    );
    assert.equal(text(r), '42');
  });

  test('python multiprocessing pool (fork, /dev/shm semaphores, pickled tool functions)', async () => {
    const r = await executor.execute(
      toolCall(
        'python',
        'import multiprocessing as mp\ndef square(x):\n    return x * x\ndef main(args):\n    with mp.get_context("fork").Pool(2) as pool:\n        return pool.map(square, [1, 2, 3])',
        { timeoutSeconds: 10 },
      ),
    );
    assert.equal(text(r), '[1,4,9]');
  });

  test('python extension modules (sqlite3, ssl, lzma, ctypes) load', async () => {
    const r = await executor.execute(
      toolCall(
        'python',
        'import sqlite3, ssl, lzma, bz2, ctypes\ndef main(args):\n    db = sqlite3.connect(":memory:")\n    return db.execute("select 40 + 2").fetchone()[0]',
      ),
    );
    assert.equal(text(r), '42');
  });

  test('node child process and worker thread', async () => {
    const r = await executor.execute(
      toolCall(
        'node',
        `const { execFileSync } = require('node:child_process');
         const { Worker } = require('node:worker_threads');
         async function main() {
           const child = String(execFileSync(process.execPath, ['-e', 'console.log(6 * 7)'])).trim();
           const worker = await new Promise((resolve, reject) => {
             const w = new Worker("require('node:worker_threads').parentPort.postMessage(7)", { eval: true });
             w.on('message', resolve);
             w.on('error', reject);
           });
           return { child, worker };
         }`,
        { timeoutSeconds: 10 },
      ),
    );
    assert.deepEqual(r.structuredContent, { child: '42', worker: 7 });
  });

  test('bash pipelines through xargs, jq and awk', async () => {
    const r = await executor.execute(
      toolCall(
        'bash',
        'seq 1 3 | xargs -n1 echo | sort -r | head -1; jq -n "1+1"; awk "BEGIN{print 3}"',
      ),
    );
    assert.equal(text(r), '3\n2\n3\n');
  });
});

describe('crash recovery', () => {
  test('sandbox cgroups left by a dead executor are removed at start; fresh ones are kept', async () => {
    const roots = detectCgroups();
    const base = roots.version === 'v1' ? join(roots.memoryMount, EXECUTOR_CGROUP) : roots.base;
    const stale = join(base, `stale-test-${process.pid}`);
    const fresh = join(base, `fresh-test-${process.pid}`);
    mkdirSync(join(stale, 'NSJAIL.1'), { recursive: true });
    mkdirSync(fresh);
    const hourAgo = new Date(Date.now() - 3600_000);
    utimesSync(stale, hourAgo, hourAgo);
    try {
      const second = await createSandboxExecutor({ nsjailPath: nsjailForTests(), warmPoolSize: 0 });
      await second.close();
      assert.equal(existsSync(stale), false);
      assert.equal(existsSync(fresh), true);
    } finally {
      for (const dir of [join(stale, 'NSJAIL.1'), stale, fresh])
        if (existsSync(dir)) rmdirSync(dir);
    }
  });
});

describe('prepared runtime roots', () => {
  /** A directory for prepared roots; as in the image, the jail's id can traverse it. */
  function rootsDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'prepared-roots-test-'));
    chmodSync(dir, 0o755);
    return dir;
  }

  test('an executor on roots prepared ahead of time runs calls and leaves the roots in place', async () => {
    const dir = rootsDir();
    try {
      await prepareRuntimeRoots(dir);
      const prepared = await createSandboxExecutor({
        nsjailPath: nsjailForTests(),
        warmPoolSize: 0,
        runtimeRoots: dir,
      });
      try {
        await prepared.probe();
        const r = await prepared.execute(toolCall('python', 'def main(args):\n    return 6 * 7'));
        assert.equal(text(r), '42');
      } finally {
        await prepared.close();
      }
      assert.equal(existsSync(join(dir, 'python', 'etc', 'passwd')), true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a tampered prepared root is refused at start with the reason', async () => {
    const dir = rootsDir();
    try {
      await prepareRuntimeRoots(dir);
      writeFileSync(join(dir, 'node', 'etc', 'planted'), 'x', { mode: 0o644 });
      await assert.rejects(
        createSandboxExecutor({ nsjailPath: nsjailForTests(), warmPoolSize: 0, runtimeRoots: dir }),
        (error: unknown) =>
          isMcpworksError(error) &&
          error.code === ErrorCode.SandboxUnavailable &&
          /prepared node root .* is refused: \/etc\/planted is not part of the runtime/.test(
            error.message,
          ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('roots built at start on another filesystem', () => {
  test('are copies, and the executor warns with the bytes copied and that they are in memory', async (t) => {
    // /dev/shm: a tmpfs, so another filesystem than the runtimes' (like a pod's memory /tmp)
    if (!existsSync('/dev/shm')) assert.fail('this test needs /dev/shm (a tmpfs)');
    const lines: string[] = [];
    const logger = createLogger({
      level: 'warn',
      destination: { write: (l: string) => lines.push(l) },
    });
    const copying = await createSandboxExecutor({
      nsjailPath: nsjailForTests(),
      warmPoolSize: 0,
      runtimeRootParent: '/dev/shm',
      logger,
    });
    t.after(() => copying.close());
    const warning = lines.map((l) => JSON.parse(l)).find((l) => l.copiedBytes !== undefined);
    assert.ok(warning, 'no warning about copied runtimes');
    assert.ok(warning.copiedBytes > 10 * 1024 * 1024, `copiedBytes ${warning.copiedBytes}`);
    assert.equal(warning.memoryBacked, true);
  });
});
