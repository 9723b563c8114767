// Runs a real `mcpworks serve` child process (real nsjail underneath) on a free loopback port
// and reads the decision records it writes. Used by the e2e, conformance and load tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rename, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { apiKeyCredentialFields, generateApiKey } from '../../src/gateway/auth/apikeys.ts';
import type { DecisionRecord } from '../../src/gateway/decisions/record.ts';
import { repoRoot, resolveNsjail } from '../harness/paths.ts';

export interface RunningServe {
  /** http://127.0.0.1:PORT */
  base: string;
  stderr(): string;
  /** Everything serve wrote to stdout (nothing, with --decision-log). */
  stdout(): string;
  /** Path of the --decision-log file, for tools that read it (e.g. `mcpworks audit verify`). */
  decisionLog: string;
  /** Every decision record written so far (the --decision-log file). */
  decisions(): Promise<DecisionRecord[]>;
  stop(): Promise<number | null>;
}

const MAIN = join(repoRoot, 'src', 'cli', 'main.ts');

export async function startServe(
  files: string[],
  extraArgs: string[] = [],
  options: { logLevel?: string } = {},
): Promise<RunningServe> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-serve-'));
  const decisionLog = join(dir, 'decisions.jsonl');
  const args = [
    MAIN,
    'serve',
    ...files.flatMap((f) => ['-f', f]),
    '--port',
    '0',
    '--decision-log',
    decisionLog,
    ...extraArgs,
  ];
  const child: ChildProcess = spawn(process.execPath, args, {
    env: {
      ...process.env,
      MCPWORKS_NSJAIL: resolveNsjail(),
      MCPWORKS_LOG_LEVEL: options.logLevel ?? 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const base = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`serve did not become ready in 60 s:\n${err}`)),
      60_000,
    );
    const onData = () => {
      const m = /MCP endpoint {2}(http:\/\/127\.0\.0\.1:\d+)\//.exec(err);
      if (m) {
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        resolve(m[1]!);
      }
    };
    child.stderr!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before it was ready:\n${err}`));
    });
  });
  return {
    base,
    stderr: () => err,
    stdout: () => out,
    decisionLog,
    async decisions() {
      const text = await readFile(decisionLog, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as DecisionRecord);
    },
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Polls until `n` records are in the log (records are written when a request ends). */
export async function waitForDecisions(
  serve: RunningServe,
  n: number,
  timeoutMs = 20_000,
): Promise<DecisionRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = await serve.decisions();
    if (records.length >= n || Date.now() > deadline) return records;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Replaces a manifest of a running `serve --watch` the way a careful editor saves: a dotfile
 * beside it (serve reads no dotfiles), then a rename. A plain writeFile truncates first, and on a
 * busy machine serve can load the empty file between the truncation and the write.
 */
export async function replaceManifest(file: string, text: string): Promise<void> {
  const temporary = join(dirname(file), `.${basename(file)}.tmp`);
  await writeFile(temporary, text);
  await rename(temporary, file);
}

export const DEMO_KEY = 'mcpw_demo_xp1v1W41ra6mbD8xjT_7Bg9CmWvtQLA2AGGde393Ark';

/**
 * config/samples plus a second agent (`e2e-agent`, allowed every demo tool) whose key is returned,
 * and a third (`unlisted-agent`) that no policy names, in a temporary directory: the samples
 * stay untouched.
 */
export async function samplesWithSecondAgent(): Promise<{
  dir: string;
  key: string;
  unlistedKey: string;
}> {
  const dir = await mkdtemp(join(tmpdir(), 'mcpworks-samples-'));
  const samples = join(repoRoot, 'config', 'samples');
  const key = generateApiKey('e2e');
  const unlistedKey = generateApiKey('unlisted');
  for (const name of await readdir(samples)) {
    if (!name.endsWith('.yaml') || name === 'kustomization.yaml') continue;
    if (name.includes('secret')) {
      const secret = parse(await readFile(join(samples, name), 'utf8')) as {
        stringData: Record<string, string>;
      };
      secret.stringData['e2e'] = JSON.stringify({
        ...(await apiKeyCredentialFields(key, { N: 1024 })),
        agent: 'e2e-agent',
        groups: ['e2e'],
      });
      secret.stringData['unlisted'] = JSON.stringify({
        ...(await apiKeyCredentialFields(unlistedKey, { N: 1024 })),
        agent: 'unlisted-agent',
      });
      await writeFile(join(dir, name), stringify(secret));
    } else {
      await copyFile(join(samples, name), join(dir, name));
    }
  }
  await writeFile(
    join(dir, 'e2e-policy.yaml'),
    stringify({
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'AgentPolicy',
      metadata: { name: 'e2e-agent-access', namespace: 'default' },
      spec: {
        servers: { names: ['demo'] },
        rules: [
          {
            effect: 'Allow',
            subjects: [{ kind: 'Agent', name: 'e2e-agent' }],
            tools: ['*'],
            reason: 'the e2e agent may call every demo tool',
          },
        ],
      },
    }),
  );
  return { dir, key, unlistedKey };
}

export async function connectClient(url: string, token?: string): Promise<Client> {
  const client = new Client({ name: 'e2e-agent', version: '1.0.0' });
  const headers: Record<string, string> =
    token === undefined ? {} : { authorization: `Bearer ${token}` };
  await client.connect(
    new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } }),
  );
  return client;
}

/** Headers of a raw JSON-RPC POST made with `key`, plus `extra`. */
export function rpcHeaders(
  key: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${key}`,
    ...extra,
  };
}

/** A raw `initialize` POST with these headers (no client library: the tests shape each byte). */
export function postInitialize(url: string, headers: Record<string, string>): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'raw-http-test', version: '1' },
      },
    }),
  });
}

/** Opens a session by raw HTTP; returns the headers its next requests carry. */
export async function openRawSession(url: string, key: string): Promise<Record<string, string>> {
  const init = await postInitialize(url, rpcHeaders(key));
  if (init.status !== 200)
    throw new Error(`initialize answered ${init.status}: ${await init.text()}`);
  await init.text();
  return rpcHeaders(key, {
    'mcp-session-id': init.headers.get('mcp-session-id') ?? '',
    'mcp-protocol-version': '2025-06-18',
  });
}
