// End to end: `mcpworks serve --audit-signing-key` with a key from the real `mcpworks audit
// keygen`, a real call through the MCP endpoint, then the real `mcpworks audit verify
// --public-key` on the decision log it wrote: intact; and with a fabricated chain appended
// (valid hashes, recomputed with the project's own canonical functions): broken, at that line.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { appendFile, copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import type { DecisionRecord } from '../../src/gateway/decisions/record.ts';
import {
  createDecisionSigner,
  keyIdOf,
  parsePublicKeys,
} from '../../src/gateway/decisions/signing.ts';
import { fabricatedLines } from '../../src/gateway/decisions/testing/builders.ts';
import { repoRoot } from '../harness/paths.ts';
import {
  connectClient,
  samplesWithSecondAgent,
  startServe,
  waitForDecisions,
  type RunningServe,
} from './serve-harness.ts';

const MAIN = join(repoRoot, 'src', 'cli', 'main.ts');

/** The real CLI as a process: exit code and output. */
function mcpworks(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr }),
    );
  });
}

let keys: string;
let publicKeyFile: string;
let serve: RunningServe;
let records: DecisionRecord[];
/** The decision_log_last_seq line of /metrics, read before serve stopped. */
let lastSeqMetric: { writerId: string; keyId: string; seq: number };

before(async () => {
  keys = await mkdtemp(join(tmpdir(), 'mcpworks-signing-'));
  publicKeyFile = join(keys, 'audit.pub.pem');
  const secretFile = join(keys, 'audit-secret.yaml');
  const generated = await mcpworks(
    'audit',
    'keygen',
    '--name',
    'audit-signing',
    '--secret-file',
    secretFile,
    '--public-key-file',
    publicKeyFile,
  );
  assert.equal(generated.code, 0, generated.stderr);
  // What an operator does with the Secret for a local run: the PEM out of its data.
  const secret = parse(await readFile(secretFile, 'utf8')) as { data: Record<string, string> };
  const privateKeyFile = join(keys, 'ed25519.key');
  await writeFile(privateKeyFile, Buffer.from(secret.data['ed25519.key'] as string, 'base64'), {
    mode: 0o600,
  });

  const fixture = await samplesWithSecondAgent();
  serve = await startServe([fixture.dir], ['--audit-signing-key', privateKeyFile]);
  const client = await connectClient(`${serve.base}/mcp`, fixture.key);
  const result = await client.callTool({
    name: 'word_count',
    arguments: { text: 'signed and sealed' },
  });
  assert.notEqual(result.isError, true, JSON.stringify(result));
  await client.close();
  const written = await waitForDecisions(serve, 3);
  const metrics = await (await fetch(`${serve.base}/metrics`)).text();
  const m =
    /^mcpworks_decision_log_last_seq\{writer_id="([^"]+)",key_id="([0-9a-f]*)"\} (\d+)$/m.exec(
      metrics,
    );
  assert.ok(m, metrics);
  lastSeqMetric = { writerId: m[1]!, keyId: m[2]!, seq: Number(m[3]) };
  assert.ok(lastSeqMetric.seq >= written.at(-1)!.seq);
  // Stopped: the log is complete (the client's GET stream is recorded when it closes).
  await serve.stop();
  records = await serve.decisions();
});
after(async () => {
  await serve?.stop();
});

test('every record serve wrote is signed by the keygen key', async () => {
  const [publicKey] = parsePublicKeys(await readFile(publicKeyFile, 'utf8'));
  assert.ok(
    records.some((r) => r.method === 'tools/call' && r.tool === 'word_count' && r.outcome === 'ok'),
  );
  for (const record of records) assert.equal(record.keyId, keyIdOf(publicKey!));
  for (const record of records) assert.match(record.signature ?? '', /^[A-Za-z0-9_-]{86}$/);
});

test('audit verify --public-key: the log serve wrote is intact and signed', async () => {
  const result = await mcpworks(
    'audit',
    'verify',
    serve.decisionLog,
    '--public-key',
    publicKeyFile,
    '--require-start',
  );
  assert.equal(result.code, 0, result.stdout + result.stderr);
  assert.match(result.stdout, new RegExp(`^intact: ${records.length} records from 1 writer`));
  assert.match(result.stdout, /signed: every record, by key\(s\) [0-9a-f]{16}/);
  const unchecked = await mcpworks('audit', 'verify', serve.decisionLog);
  assert.equal(unchecked.code, 0);
  assert.match(unchecked.stdout, /note: writer identity was not checked/);
});

test('records fabricated onto the writer chain pass the hash check but fail --public-key at the first of them', async () => {
  const forged = join(keys, 'continued.jsonl');
  await copyFile(serve.decisionLog, forged);
  await appendFile(forged, `${fabricatedLines(3, { after: records.at(-1)! }).join('\n')}\n`);
  const line = records.length + 1;
  assert.equal((await mcpworks('audit', 'verify', forged)).code, 0, 'a chain alone cannot tell');
  const result = await mcpworks('audit', 'verify', forged, '--public-key', publicKeyFile);
  assert.equal(result.code, 1, result.stdout);
  assert.match(
    result.stdout,
    new RegExp(
      `^BROKEN \\(unsigned\\) at line ${line}: record at line ${line} \\(writer ${records[0]!.writerId}, seq ${records.length}\\) is not signed`,
    ),
  );
});

test('a whole fabricated writer signed with another key under the trusted keyId fails as a bad signature', async () => {
  const [publicKey] = parsePublicKeys(await readFile(publicKeyFile, 'utf8'));
  const forged = join(keys, 'other-writer.jsonl');
  await copyFile(serve.decisionLog, forged);
  const impostor = createDecisionSigner(generateKeyPairSync('ed25519').privateKey);
  await appendFile(
    forged,
    `${fabricatedLines(2, { writerId: 'gateway-impostor' }, { keyId: keyIdOf(publicKey!), signer: impostor }).join('\n')}\n`,
  );
  const result = await mcpworks('audit', 'verify', forged, '--public-key', publicKeyFile);
  assert.equal(result.code, 1, result.stdout);
  assert.match(
    result.stdout,
    new RegExp(
      `^BROKEN \\(bad-signature\\) at line ${records.length + 1}: .*writer gateway-impostor, seq 0`,
    ),
  );
});

test('the last seq from /metrics finds a truncated tail that the chain alone cannot', async () => {
  assert.equal(lastSeqMetric.writerId, records[0]!.writerId);
  assert.equal(lastSeqMetric.keyId, records[0]!.keyId);
  const expect = `${lastSeqMetric.writerId}=${lastSeqMetric.seq}`;
  const whole = await mcpworks(
    'audit',
    'verify',
    serve.decisionLog,
    '--public-key',
    publicKeyFile,
    '--expect-last',
    expect,
  );
  assert.equal(whole.code, 0, whole.stdout);
  const truncated = join(keys, 'truncated.jsonl');
  const text = await readFile(serve.decisionLog, 'utf8');
  const kept = text.split('\n').filter(Boolean).slice(0, lastSeqMetric.seq); // drops seq N and later
  await writeFile(truncated, `${kept.join('\n')}\n`);
  assert.equal(
    (await mcpworks('audit', 'verify', truncated, '--public-key', publicKeyFile)).code,
    0,
  );
  const found = await mcpworks(
    'audit',
    'verify',
    truncated,
    '--public-key',
    publicKeyFile,
    '--expect-last',
    expect,
  );
  assert.equal(found.code, 1);
  assert.match(found.stdout, /^BROKEN \(truncated\)/);
});
