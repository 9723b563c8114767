/**
 * Tools' secretEnv against the real nsjail, read from Secret volumes laid out as the kubelet
 * writes them: each runtime reads its value, only the declaring tool sees it, leaks in every
 * form come back redacted and counted, a missing key fails closed while other tools work, a
 * rotation applies to the next call, and no value reaches a log line.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { createExecutorClient } from '../../src/executor/client.ts';
import { createExecutorMetrics } from '../../src/executor/metrics.ts';
import { createSandboxExecutor } from '../../src/executor/sandbox-executor.ts';
import { createDirectorySecretSource } from '../../src/executor/secrets.ts';
import { createExecutorService, type ExecutorService } from '../../src/executor/service.ts';
import { nsjailForTests, toolCall, type CallOverrides } from '../../src/executor/testing.ts';
import type { SandboxExecutor, ToolCallResult } from '../../src/executor/types.ts';
import type { Runtime } from '../../src/api/v1alpha1/mcpserver.ts';
import { REDACTED_PATHS } from '../../src/shared/logger.ts';

const TOKEN_V1 = 'ghp_first+value/with=odd chars&9';
const TOKEN_V2 = 'ghp_second-value-after-rotation';
const OTHER = 'another-secret-of-another-tool';

let dir: string;
let executor: SandboxExecutor;
let logs = '';
let generation = 0;

/** A Secret volume as the kubelet writes it, `..data` swapped atomically on each write. */
function writeSecretVolume(name: string, data: Record<string, string>): void {
  const volume = join(dir, name);
  mkdirSync(volume, { recursive: true });
  generation += 1;
  const stamped = `..2026_12_03_${generation}`;
  mkdirSync(join(volume, stamped));
  for (const [key, value] of Object.entries(data)) writeFileSync(join(volume, stamped, key), value);
  symlinkSync(stamped, join(volume, '..data_tmp'));
  renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
  for (const key of Object.keys(data)) {
    try {
      symlinkSync(join('..data', key), join(volume, key));
    } catch {
      // linked by an earlier generation
    }
  }
}

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest('hex');
const text = (r: ToolCallResult) => r.content.map((c) => c.text).join('');
const withToken: CallOverrides = { secretEnv: { GITHUB_TOKEN: { name: 'github', key: 'token' } } };

function call(runtime: Runtime, code: string, overrides: CallOverrides = withToken) {
  return executor.execute(toolCall(runtime, code, overrides));
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mcpworks-secret-volumes-'));
  writeSecretVolume('github', { token: TOKEN_V1 });
  writeSecretVolume('other', { value: OTHER });
  const capture = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs += chunk.toString('utf8');
      done();
    },
  });
  executor = await createSandboxExecutor({
    nsjailPath: nsjailForTests(),
    warmPoolSize: 1,
    maxConcurrency: 4,
    secrets: createDirectorySecretSource(dir),
    logger: pino({ level: 'debug', redact: REDACTED_PATHS }, capture),
  });
  await executor.probe();
});

after(async () => {
  await executor?.close();
  // No value, in any form the scanner knows, was ever logged (checked once every call ran).
  for (const value of [TOKEN_V1, TOKEN_V2, OTHER]) {
    for (const form of [value, Buffer.from(value).toString('base64'), encodeURIComponent(value)])
      assert.ok(!logs.includes(form), `a secret form reached the executor log`);
  }
  assert.match(logs, /tool call finished/);
  rmSync(dir, { recursive: true, force: true });
});

describe('each runtime reads the secret it declares', () => {
  test('python', async () => {
    const r = await call(
      'python',
      'import hashlib, os\ndef main(args):\n    return hashlib.sha256(os.environ["GITHUB_TOKEN"].encode()).hexdigest()',
    );
    assert.equal(r.outcome, 'ok');
    assert.equal(text(r), sha256(TOKEN_V1));
    assert.equal(r.redactions, undefined);
  });

  test('node', async () => {
    const r = await call(
      'node',
      "const { createHash } = require('node:crypto');\nfunction main() { return createHash('sha256').update(process.env.GITHUB_TOKEN).digest('hex'); }",
    );
    assert.equal(r.outcome, 'ok');
    assert.equal(text(r), sha256(TOKEN_V1));
  });

  test('bash', async () => {
    const r = await call('bash', 'printf %s "$GITHUB_TOKEN" | sha256sum | cut -d" " -f1');
    assert.equal(r.outcome, 'ok');
    assert.equal(text(r).trim(), sha256(TOKEN_V1));
  });
});

describe('leaks come back redacted and counted', () => {
  test('python returning the value in every form', async () => {
    const r = await call(
      'python',
      [
        'import base64, os, urllib.parse, json',
        'def main(args):',
        '    v = os.environ["GITHUB_TOKEN"]',
        '    b = v.encode()',
        '    return {',
        '        "raw": v,',
        '        "b64": base64.b64encode(b).decode(),',
        '        "b64url": base64.urlsafe_b64encode(b).decode().rstrip("="),',
        '        "basic": "Basic " + base64.b64encode(b"user:" + b).decode(),',
        '        "quote": urllib.parse.quote(v),',
        '        "quote_plus": urllib.parse.quote_plus(v),',
        '        "hex": b.hex(),',
        '        "HEX": b.hex().upper(),',
        '        "json": json.dumps({"t": v}),',
        '        v: "as a key",',
        '    }',
      ].join('\n'),
    );
    assert.equal(r.outcome, 'ok');
    const structured = r.structuredContent ?? {};
    for (const [field, value] of Object.entries(structured)) {
      if (field === '[REDACTED:GITHUB_TOKEN]') continue;
      assert.match(String(value), /\[REDACTED:GITHUB_TOKEN\]/, field);
    }
    assert.equal(structured['[REDACTED:GITHUB_TOKEN]'], 'as a key');
    assert.ok(!text(r).includes(TOKEN_V1));
    assert.deepEqual(r.redactions, { GITHUB_TOKEN: 10 });
  });

  test('node URL-encoding and base64url', async () => {
    const r = await call(
      'node',
      `function main() {
         const v = process.env.GITHUB_TOKEN;
         return [encodeURIComponent(v), new URLSearchParams({ q: v }).toString(), Buffer.from(v).toString('base64url')].join(' ');
       }`,
    );
    assert.equal(r.outcome, 'ok');
    assert.equal(
      text(r),
      '[REDACTED:GITHUB_TOKEN] q=[REDACTED:GITHUB_TOKEN] [REDACTED:GITHUB_TOKEN]',
    );
    assert.deepEqual(r.redactions, { GITHUB_TOKEN: 3 });
  });

  test('bash echoing base64 and hex', async () => {
    const r = await call(
      'bash',
      'printf "%s\\n" "$GITHUB_TOKEN"; printf %s "$GITHUB_TOKEN" | base64 -w0; echo; printf %s "$GITHUB_TOKEN" | od -An -tx1 | tr -d " \\n"',
    );
    assert.equal(r.outcome, 'ok');
    assert.equal(
      text(r).trim(),
      '[REDACTED:GITHUB_TOKEN]\n[REDACTED:GITHUB_TOKEN]\n[REDACTED:GITHUB_TOKEN]',
    );
    assert.deepEqual(r.redactions, { GITHUB_TOKEN: 3 });
  });

  test('an error whose message and stderr carry the value', async () => {
    const r = await call(
      'python',
      'import os, sys\ndef main(args):\n    print("debug", os.environ["GITHUB_TOKEN"], file=sys.stderr)\n    raise ValueError("rejected token " + os.environ["GITHUB_TOKEN"])',
    );
    assert.equal(r.outcome, 'error');
    assert.equal(r.message, 'ValueError: rejected token [REDACTED:GITHUB_TOKEN] (line 4)');
    assert.ok(!text(r).includes(TOKEN_V1));
    assert.deepEqual(r.redactions, { GITHUB_TOKEN: 1 });
  });

  test('an error log tail that was cut inside the value keeps no piece of it', async () => {
    // The message keeps the last 2000 characters of stderr: this cuts 17 characters into it.
    const r = await call(
      'bash',
      'printf %s "$GITHUB_TOKEN" >&2; head -c 1985 /dev/zero | tr "\\0" y >&2; exit 1',
    );
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /\n…\[REDACTED:GITHUB_TOKEN\]y{1985}$/);
    assert.deepEqual(r.redactions, { GITHUB_TOKEN: 1 });
  });

  test('a failing bash script whose stderr carries the value', async () => {
    const r = await call('bash', 'echo "token=$GITHUB_TOKEN" >&2; exit 3');
    assert.equal(r.outcome, 'error');
    assert.match(text(r), /token=\[REDACTED:GITHUB_TOKEN\]/);
    assert.ok(!text(r).includes(TOKEN_V1));
  });
});

describe('only the declaring tool sees its secret', () => {
  test('another tool of the same server has no such variable, in env or /proc', async () => {
    const declared = await call(
      'python',
      'import os\ndef main(args):\n    return "GITHUB_TOKEN" in os.environ',
    );
    assert.equal(text(declared), 'true');
    const r = await call(
      'python',
      [
        'import os',
        'def main(args):',
        '    seen = [open("/proc/self/environ", "rb").read().decode("latin-1")]',
        '    for pid in os.listdir("/proc"):',
        '        if pid.isdigit():',
        '            try: seen.append(open(f"/proc/{pid}/environ", "rb").read().decode("latin-1"))',
        '            except OSError: pass',
        '    return {"env": sorted(os.environ), "proc": "\\n".join(seen)}',
      ].join('\n'),
      { name: 'plain-tool' },
    );
    assert.equal(r.outcome, 'ok');
    const env = (r.structuredContent?.['env'] ?? []) as string[];
    assert.ok(!env.includes('GITHUB_TOKEN'));
    const proc = String(r.structuredContent?.['proc']);
    assert.ok(!proc.includes('GITHUB_TOKEN') && !proc.includes(TOKEN_V1));
    assert.equal(r.redactions, undefined);
  });

  test('concurrent calls of two tools each see only their own secret', async () => {
    const code =
      'import os\ndef main(args):\n    return sorted(k for k in os.environ if k.endswith("_SECRET") or k == "GITHUB_TOKEN")';
    const [a, b] = await Promise.all([
      call('python', code, withToken),
      call('python', code, { secretEnv: { OTHER_SECRET: { name: 'other', key: 'value' } } }),
    ]);
    assert.equal(text(a), '["GITHUB_TOKEN"]');
    assert.equal(text(b), '["OTHER_SECRET"]');
  });

  test('the Secret volumes on the host are not reachable from the sandbox', async () => {
    const r = await call(
      'python',
      `import os\ndef main(args):\n    return [os.path.exists(p) for p in (${JSON.stringify(join(dir, 'github', 'token'))}, "/var/run/mcpworks/secrets")]`,
    );
    assert.equal(text(r), '[false,false]');
  });
});

describe('a missing Secret or key fails closed', () => {
  test('the call is refused before any sandbox, naming variable, Secret and key; other tools work', async () => {
    const missing = await call('python', 'def main(args):\n    return "ran"', {
      secretEnv: {
        GITHUB_TOKEN: { name: 'github', key: 'token' },
        DEPLOY_KEY: { name: 'github', key: 'deploy' },
      },
    });
    assert.equal(missing.outcome, 'error');
    assert.equal(missing.isError, true);
    assert.equal(
      missing.message,
      'secretEnv DEPLOY_KEY: key "deploy" of Secret test/github is missing',
    );
    assert.equal(missing.outputBytes, 0);
    const absent = await call('bash', 'echo ran', {
      secretEnv: { X_TOKEN: { name: 'no-such-secret', key: 'token' } },
    });
    assert.equal(absent.message, 'secretEnv X_TOKEN: Secret test/no-such-secret not found');
    const other = await call('bash', 'echo still-works', {});
    assert.equal(other.outcome, 'ok');
    assert.equal(text(other).trim(), 'still-works');
  });

  test('a value shorter than the minimum is refused', async () => {
    writeSecretVolume('short', { pin: '1234' });
    const r = await call('bash', 'echo ran', { secretEnv: { PIN: { name: 'short', key: 'pin' } } });
    assert.equal(r.outcome, 'error');
    assert.match(
      r.message ?? '',
      /^secretEnv PIN: key "pin" of Secret test\/short is shorter than 8 bytes/,
    );
  });
});

describe('rotation', () => {
  // Last: it changes the value the other groups expect.
  test('a rotated Secret volume applies to the next call, warm or cold', async () => {
    const code =
      'import hashlib, os\ndef main(args):\n    return hashlib.sha256(os.environ["GITHUB_TOKEN"].encode()).hexdigest()';
    assert.equal(text(await call('python', code)), sha256(TOKEN_V1));
    writeSecretVolume('github', { token: TOKEN_V2 });
    assert.equal(text(await call('python', code)), sha256(TOKEN_V2));
    const leak = await call(
      'python',
      'import os\ndef main(args):\n    return os.environ["GITHUB_TOKEN"]',
    );
    assert.equal(text(leak), '[REDACTED:GITHUB_TOKEN]');
  });
});

describe('over HTTP (executor service and the gateway client)', () => {
  let service: ExecutorService;
  before(async () => {
    service = createExecutorService({
      executor,
      token: 'secrets-test-token-0123456789',
      maxConcurrency: 4,
      metrics: createExecutorMetrics({ defaultMetrics: false }),
    });
    service.setReady(true);
    await service.listen(0, '127.0.0.1');
  });
  after(() => service.drain(1000));

  test('redactions travel back to the gateway with the redacted result', async () => {
    const port = (service.server.address() as { port: number }).port;
    const client = createExecutorClient({
      url: `http://127.0.0.1:${port}`,
      token: 'secrets-test-token-0123456789',
    });
    const r = await client.execute(
      toolCall('node', 'function main() { return { t: process.env.GITHUB_TOKEN }; }', withToken),
    );
    assert.equal(r.outcome, 'ok');
    assert.deepEqual(r.structuredContent, { t: '[REDACTED:GITHUB_TOKEN]' });
    assert.deepEqual(r.redactions, { GITHUB_TOKEN: 1 });
    await client.close();
  });
});
