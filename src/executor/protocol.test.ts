import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  callTimings,
  classifyRun,
  encodeCall,
  scrubHostPaths,
  type SandboxRun,
} from './protocol.ts';

function run(overrides: Partial<SandboxRun> = {}): SandboxRun {
  return {
    runtime: 'python',
    exitCode: 0,
    timedOut: false,
    outputExceeded: false,
    aborted: false,
    logsExceeded: false,
    result: Buffer.from('{"ok": true, "value": {"a": 1}}\n'),
    resultBytes: 32,
    logTail: '',
    jailLog: '',
    usage: { memoryLimitHit: false, pidsLimitHit: false, memoryPeakBytes: 1, pidsPeak: 1 },
    marks: { writeUs: 1_000 },
    durationMs: 5,
    maxOutputBytes: 1024,
    timeoutSeconds: 10,
    memoryMiB: 64,
    pids: 16,
    ...overrides,
  };
}
const frame = (value: unknown) => Buffer.from(JSON.stringify(value) + '\n');

describe('encodeCall', () => {
  test('python and node get one JSON document on one line', () => {
    const bytes = encodeCall('python', {
      code: 'a\nb',
      args: { a: 'line\nbreak' },
      env: { K: 'v' },
    });
    const text = bytes.toString();
    assert.equal(text.indexOf('\n'), text.length - 1, 'the only newline ends the call');
    assert.deepEqual(JSON.parse(text), {
      code: 'a\nb',
      args: { a: 'line\nbreak' },
      env: { K: 'v' },
    });
  });

  test('bash gets a NUL-separated header, then the arguments as JSON', () => {
    const bytes = encodeCall('bash', { code: 'echo', args: { a: 1 }, env: { K: 'v' } });
    assert.equal(bytes.toString(), '1\0K\0v\0echo\0{"a":1}');
  });

  test('bash refuses NUL characters that would shift the header', () => {
    assert.throws(() => encodeCall('bash', { code: 'echo', args: {}, env: { K: 'a\0b' } }), /NUL/);
  });
});

describe('classifyRun', () => {
  test('an object value is structured content plus its JSON text', () => {
    const r = classifyRun(run());
    assert.equal(r.outcome, 'ok');
    assert.deepEqual(r.structuredContent, { a: 1 });
    assert.equal(r.content[0]?.text, '{"a":1}');
  });

  test('a string value is plain text', () => {
    const r = classifyRun(run({ result: frame({ ok: true, value: 'hi' }) }));
    assert.deepEqual(r.content, [{ type: 'text', text: 'hi' }]);
    assert.equal(r.structuredContent, undefined);
  });

  test('an array value is JSON text without structured content', () => {
    const r = classifyRun(run({ result: frame({ ok: true, value: [1, 2] }) }));
    assert.equal(r.content[0]?.text, '[1,2]');
    assert.equal(r.structuredContent, undefined);
  });

  test('an error frame keeps type, message and line', () => {
    const r = classifyRun(
      run({ result: frame({ ok: false, error: { type: 'ValueError', message: 'bad', line: 3 } }) }),
    );
    assert.equal(r.outcome, 'error');
    assert.equal(r.isError, true);
    assert.equal(r.message, 'ValueError: bad (line 3)');
  });

  test('host paths never reach the client', () => {
    assert.equal(
      scrubHostPaths('at /home/alice/x.py and /var/lib/kubelet/a'),
      'at <path> and <path>',
    );
    const r = classifyRun(
      run({ result: frame({ ok: false, error: { type: 'E', message: 'in /home/me/file' } }) }),
    );
    assert.doesNotMatch(r.message ?? '', /\/home/);
  });

  test('memory limit wins over the SIGKILL it caused', () => {
    const r = classifyRun(
      run({
        exitCode: 137,
        result: Buffer.alloc(0),
        resultBytes: 0,
        usage: { ...run().usage, memoryLimitHit: true },
      }),
    );
    assert.equal(r.outcome, 'memory-limit');
  });

  test('a fork bomb ending in an error frame is pids-limit', () => {
    const r = classifyRun(
      run({
        result: frame({ ok: false, error: { type: 'BlockingIOError', message: 'x' } }),
        usage: { ...run().usage, pidsLimitHit: true },
      }),
    );
    assert.equal(r.outcome, 'pids-limit');
  });

  test('a bash fork bomb that exits 0 after fork failures is pids-limit', () => {
    const r = classifyRun(
      run({
        runtime: 'bash',
        result: Buffer.alloc(0),
        resultBytes: 0,
        logTail: 'bash: fork: retry: Resource temporarily unavailable',
        usage: { ...run().usage, pidsLimitHit: true },
      }),
    );
    assert.equal(r.outcome, 'pids-limit');
  });

  test('a successful call that merely used all its pids is ok', () => {
    assert.equal(classifyRun(run({ usage: { ...run().usage, pidsLimitHit: true } })).outcome, 'ok');
  });

  test('timeout', () => {
    assert.equal(
      classifyRun(run({ timedOut: true, exitCode: null, result: Buffer.alloc(0), resultBytes: 0 }))
        .outcome,
      'timeout',
    );
  });

  test('output over the cap is truncated, keeping the allowed prefix', () => {
    const r = classifyRun(
      run({ outputExceeded: true, result: Buffer.from('x'.repeat(1024)), resultBytes: 5000 }),
    );
    assert.equal(r.outcome, 'output-truncated');
    assert.equal(r.content[0]?.text.length, 1024);
  });

  test('SIGSYS is a sandbox violation', () => {
    assert.equal(
      classifyRun(run({ exitCode: 128 + 31, result: Buffer.alloc(0), resultBytes: 0 })).outcome,
      'sandbox-violation',
    );
  });

  test('bash: exit 0 is ok with stdout as text', () => {
    const r = classifyRun(run({ runtime: 'bash', result: Buffer.from('out\n') }));
    assert.deepEqual([r.outcome, r.content[0]?.text], ['ok', 'out\n']);
  });

  test('bash: a non-zero exit is an error naming the status and stderr', () => {
    const r = classifyRun(
      run({
        runtime: 'bash',
        exitCode: 3,
        result: Buffer.alloc(0),
        resultBytes: 0,
        logTail: 'boom',
      }),
    );
    assert.equal(r.outcome, 'error');
    assert.match(r.content[0]?.text ?? '', /status 3[\s\S]*boom/);
  });

  test('a garbled result channel is an error, not a crash', () => {
    assert.equal(classifyRun(run({ result: Buffer.from('{not json') })).outcome, 'error');
  });

  test('a cancelled call is an error saying so', () => {
    assert.match(classifyRun(run({ aborted: true, exitCode: null })).message ?? '', /cancelled/);
  });
});

describe('callTimings', () => {
  test('the frame stamps split the run into hand-off, interpreter and return', () => {
    const timings = callTimings(
      run({
        frame: { ok: true, value: 1, t: [1_500, 1_750] },
        marks: { writeUs: 1_000, frameUs: 2_000, countersUs: 2_300 },
      }),
    );
    assert.deepEqual(timings, {
      countersMs: 0.3,
      handoffMs: 0.5,
      interpreterMs: 0.25,
      returnMs: 0.25,
    });
  });

  test('stamps that do not fit the host marks (a tool writing its own frame) are ignored', () => {
    for (const t of [[500, 1_750], [1_800, 1_700], [1_500, 9_000], ['1500', 1_750], [1_500]]) {
      const timings = callTimings(
        run({
          frame: { ok: true, t },
          marks: { writeUs: 1_000, frameUs: 2_000, countersUs: 2_100 },
        }),
      );
      assert.deepEqual(timings, { countersMs: 0.1 }, JSON.stringify(t));
    }
  });

  test('a run without a frame has no sandbox phases', () => {
    assert.deepEqual(callTimings(run({ marks: { writeUs: 1_000 } })), {});
  });
});
