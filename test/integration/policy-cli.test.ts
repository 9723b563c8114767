// Table tests for `mcpworks policy eval|test` and `mcpworks audit verify|keygen`, run in-process through
// main() with a capturing CommandIo, plus one real process per command for the exit codes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { KeyObject } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { main } from '../../src/cli/main.ts';
import type { CommandIo } from '../../src/cli/io.ts';
import {
  createDecisionRecorder,
  decisionLine,
  jsonLineDecisionSink,
} from '../../src/gateway/decisions/recorder.ts';
import { keyIdOf, parseSigningKey } from '../../src/gateway/decisions/signing.ts';
import { entry } from '../../src/gateway/decisions/testing/builders.ts';
import { manualClock } from '../../src/shared/clock.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { repoRoot } from '../harness/paths.ts';

const dir = mkdtempSync(join(tmpdir(), 'mcpworks-policy-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

async function mcpworks(
  ...argv: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const io: CommandIo = {
    stdout: (text) => void (stdout += text),
    stderr: (text) => void (stderr += text),
    env: {},
    cwd: dir,
  };
  const code = await main(argv, io);
  return { code, stdout, stderr };
}

const POLICY = `apiVersion: mcpworks.io/v1alpha1
kind: AgentPolicy
metadata: { name: files-access, namespace: team }
spec:
  servers: { names: [files] }
  rules:
    - effect: Allow
      subjects: [{ kind: Agent, name: alice }, { kind: Group, name: readers }, { kind: ServiceAccount, name: ci }]
      tools: ['read_*', write_file]
      reason: alice, readers and CI may read
    - effect: Deny
      subjects: [{ kind: Agent, name: '*' }]
      tools: [write_file]
      conditions: ['args.path.startsWith("/etc")']
      reason: nobody writes under /etc
`;
const GUARDRAIL = `apiVersion: mcpworks.io/v1alpha1
kind: ClusterAgentPolicy
metadata: { name: prod-guardrail }
spec:
  namespaceSelector: { matchLabels: { env: prod } }
  servers: { selector: {} }
  rules:
    - effect: Deny
      subjects: [{ kind: Group, name: '*' }]
      tools: [write_file]
      reason: no writes in production namespaces
`;
const policyFile = file('policies/files.yaml', POLICY);

const request = (overrides: Record<string, unknown> = {}) =>
  JSON.stringify({
    server: 'team/files',
    subject: { kind: 'Agent', name: 'alice' },
    method: 'tools/call',
    tool: 'read_file',
    arguments: {},
    ...overrides,
  });

describe('mcpworks policy eval', () => {
  const cases: { name: string; args: () => string[]; code: number; out?: RegExp; err?: RegExp }[] =
    [
      {
        name: 'an allowed call exits 0',
        args: () => ['-f', policyFile, '--request', request()],
        code: 0,
        out: /"effect": "Allow"/,
      },
      {
        name: 'a denied call exits 1 with the deciding rule',
        args: () => [
          '-f',
          policyFile,
          '--request',
          request({ tool: 'write_file', arguments: { path: '/etc/passwd' } }),
        ],
        code: 1,
        out: /"reason": "nobody writes under \/etc"[\s\S]*"index": 1/,
      },
      {
        name: 'default deny names the agent, tool and server',
        args: () => ['-f', policyFile, '--request', request({ tool: 'rm' })],
        code: 1,
        out: /no policy allows agent \\"alice\\" to call tool \\"rm\\" on server team\/files/,
      },
      {
        name: 'a Group subject matches Group rules',
        args: () => [
          '-f',
          policyFile,
          '--request',
          request({ subject: { kind: 'Group', name: 'readers' } }),
        ],
        code: 0,
      },
      {
        name: 'a ServiceAccount subject is matched by namespace and name',
        args: () => [
          '-f',
          policyFile,
          '--request',
          request({ subject: { kind: 'ServiceAccount', name: 'ci', namespace: 'team' } }),
        ],
        code: 0,
      },
      {
        name: 'an Anonymous subject is denied by default',
        args: () => ['-f', policyFile, '--request', request({ subject: { kind: 'Anonymous' } })],
        code: 1,
      },
      {
        name: 'a directory of manifests works',
        args: () => ['-f', join(dir, 'policies'), '--request', request()],
        code: 0,
      },
      {
        name: 'request JSON that does not parse',
        args: () => ['-f', policyFile, '--request', '{server'],
        code: 2,
        err: /not valid JSON/,
      },
      {
        name: 'a request without server names the field',
        args: () => [
          '-f',
          policyFile,
          '--request',
          JSON.stringify({ subject: { kind: 'Agent', name: 'a' } }),
        ],
        code: 2,
        err: /server: /,
      },
      {
        name: 'an unknown subject kind names the field',
        args: () => [
          '-f',
          policyFile,
          '--request',
          request({ subject: { kind: 'Robot', name: 'r' } }),
        ],
        code: 2,
        err: /subject\.kind/,
      },
      {
        name: 'a ServiceAccount without namespace names the field',
        args: () => [
          '-f',
          policyFile,
          '--request',
          request({ subject: { kind: 'ServiceAccount', name: 'ci' } }),
        ],
        code: 2,
        err: /subject\.namespace: required/,
      },
      {
        name: 'an unknown request field is refused',
        args: () => ['-f', policyFile, '--request', request({ tol: 'x' })],
        code: 2,
        err: /tol/,
      },
      { name: 'no -f', args: () => ['--request', request()], code: 2, err: /-f/ },
      { name: 'no --request', args: () => ['-f', policyFile], code: 2, err: /--request/ },
      {
        name: 'a missing file',
        args: () => ['-f', join(dir, 'nope.yaml'), '--request', request()],
        code: 2,
        err: /nope\.yaml/,
      },
      {
        name: 'a schema-invalid policy names file and field',
        args: () => [
          '-f',
          file('bad-effect.yaml', POLICY.replace('effect: Allow', 'effect: Permit')),
          '--request',
          request(),
        ],
        code: 2,
        err: /bad-effect\.yaml: AgentPolicy team\/files-access: spec\.rules\[0\]\.effect/,
      },
      {
        name: 'a tool glob that does not compile names file and field',
        args: () => [
          '-f',
          file('bad-glob.yaml', POLICY.replace("'read_*'", "'read_[a'")),
          '--request',
          request(),
        ],
        code: 2,
        err: /bad-glob\.yaml: AgentPolicy\/team\/files-access: spec\.rules\[0\]\.tools\[0\]: unbalanced "\["/,
      },
      {
        name: 'a condition that does not compile names file and field',
        args: () => [
          '-f',
          file('bad-cel.yaml', POLICY.replace('args.path.startsWith("/etc")', 'args.path.(')),
          '--request',
          request(),
        ],
        code: 2,
        err: /bad-cel\.yaml: .*spec\.rules\[1\]\.conditions\[0\]/,
      },
      {
        name: 'YAML that does not parse',
        args: () => ['-f', file('broken.yaml', 'kind: [AgentPolicy'), '--request', request()],
        code: 2,
        err: /broken\.yaml/,
      },
      {
        name: 'a file without policies',
        args: () => ['-f', file('empty.yaml', '# nothing\n'), '--request', request()],
        code: 2,
        err: /no AgentPolicy or ClusterAgentPolicy/,
      },
    ];
  for (const c of cases) {
    test(c.name, async () => {
      const result = await mcpworks('policy', 'eval', ...c.args());
      assert.equal(result.code, c.code, result.stderr + result.stdout);
      if (c.out) assert.match(result.stdout, c.out);
      if (c.err) assert.match(result.stderr, c.err);
    });
  }

  test('namespace labels come from a Namespace manifest beside the policies', async () => {
    const app = join(dir, 'app');
    file(
      'app/namespace.yaml',
      'apiVersion: v1\nkind: Namespace\nmetadata: { name: team, labels: { env: prod } }\n',
    );
    file('app/kustomization.yaml', 'resources: [namespace.yaml]\n');
    file('app/policy.yaml', `${POLICY}---\n${GUARDRAIL}`);
    const result = await mcpworks(
      'policy',
      'eval',
      '-f',
      app,
      '--request',
      request({ tool: 'write_file', arguments: { path: '/tmp/x' } }),
    );
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /no writes in production namespaces/);
  });

  test('tools/list shows the tools of the McpServer manifest the caller may call', async () => {
    const server = file(
      'server.yaml',
      `apiVersion: mcpworks.io/v1alpha1
kind: McpServer
metadata: { name: files, namespace: team }
spec:
  tools:
    - { name: read_file, description: read, runtime: python, code: "print(1)" }
    - { name: rm, description: remove, runtime: python, code: "print(1)" }
  auth: { apiKeys: { secretRef: { name: keys } } }
`,
    );
    const result = await mcpworks(
      'policy',
      'eval',
      '-f',
      policyFile,
      '-f',
      server,
      '--request',
      request({ method: 'tools/list', tool: undefined }),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).tools, ['read_file']);
  });
});

describe('mcpworks policy test', () => {
  const casesFile = (cases: unknown[]) =>
    file(`cases-${Math.random().toString(36).slice(2)}.yaml`, JSON.stringify({ cases }));

  test('the GitOps example cases pass against the example policy', async () => {
    const result = await mcpworks(
      'policy',
      'test',
      '-f',
      join(repoRoot, 'examples/gitops/apps/mcp-team/agentpolicy.yaml'),
      join(repoRoot, 'examples/gitops/ci/mcp-team-cases.yaml'),
    );
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /5 passed, 0 failed/);
  });

  test('prints a line per case and exits 0 when all pass', async () => {
    const cases = casesFile([
      { name: 'alice reads', request: JSON.parse(request()), expect: 'Allow' },
      {
        name: 'bob does not',
        request: JSON.parse(request({ subject: { kind: 'Agent', name: 'bob' } })),
        expect: 'Deny',
      },
    ]);
    const result = await mcpworks('policy', 'test', '-f', policyFile, cases);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^PASS {2}alice reads: Allow/m);
    assert.match(result.stdout, /^PASS {2}bob does not: Deny/m);
  });

  test('a mismatch exits 1 and names the deciding rule', async () => {
    const cases = casesFile([
      {
        name: 'wrong',
        request: JSON.parse(request({ tool: 'write_file', arguments: { path: '/etc/x' } })),
        expect: 'Allow',
      },
    ]);
    const result = await mcpworks('policy', 'test', '-f', policyFile, cases);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /^FAIL {2}wrong: expected Allow, got Deny by AgentPolicy\/team\/files-access rule 1/m,
    );
  });

  test('an invalid case request exits 2 naming the case field', async () => {
    const cases = casesFile([
      { name: 'ok', request: JSON.parse(request()), expect: 'Allow' },
      {
        name: 'bad',
        request: { server: 'team/files', subject: { kind: 'Robot' } },
        expect: 'Deny',
      },
    ]);
    const result = await mcpworks('policy', 'test', '-f', policyFile, cases);
    assert.equal(result.code, 2);
    assert.match(result.stdout, /^ERROR bad: .*cases\[1\]\.request\.subject\.kind/m);
  });

  test('a cases file without expect exits 2 naming the field', async () => {
    const cases = casesFile([{ name: 'x', request: JSON.parse(request()) }]);
    const result = await mcpworks('policy', 'test', '-f', policyFile, cases);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /cases\[0\]\.expect/);
  });

  test('an invalid policy exits 2 before any case runs', async () => {
    const cases = casesFile([{ name: 'x', request: JSON.parse(request()), expect: 'Allow' }]);
    const bad = file(
      'bad-test.yaml',
      POLICY.replace('reason: alice, readers and CI may read', 'reason: ""'),
    );
    const result = await mcpworks('policy', 'test', '-f', bad, cases);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /bad-test\.yaml: .*spec\.rules\[0\]\.reason/);
    assert.equal(result.stdout, '');
  });
});

describe('mcpworks policy eval and test: egress guardrails', () => {
  const EGRESS_GUARDRAILS = `apiVersion: mcpworks.io/v1alpha1
kind: ClusterAgentPolicy
metadata: { name: no-paste }
spec:
  servers: { selector: {} }
  egressDeny:
    - hosts: [pastebin.com, '*.paste.example']
      reason: no paste sites
    - hosts: [api.github.com]
      tools: ['write_*']
      reason: writers never reach GitHub
---
apiVersion: mcpworks.io/v1alpha1
kind: ClusterAgentPolicy
metadata: { name: trial }
spec:
  auditOnly: true
  servers: { names: [files] }
  egressDeny:
    - hosts: [example.org]
      reason: trying a new guardrail
`;
  const guardrails = file('egress/guardrails.yaml', EGRESS_GUARDRAILS);
  const evalEgress = (egress: unknown, overrides: Record<string, unknown> = {}) =>
    mcpworks(
      'policy',
      'eval',
      '-f',
      policyFile,
      '-f',
      guardrails,
      '--request',
      request({ egress, ...overrides }),
    );

  test('a host a guardrail denies: exit 1, the guardrail, its reason and the pattern that matched', async () => {
    const result = await evalEgress({ host: 'Bin.Paste.Example', port: 8443 });
    assert.equal(result.code, 1, result.stderr);
    const output = JSON.parse(result.stdout);
    assert.equal(output.effect, 'Allow');
    assert.deepEqual(output.egress, {
      host: 'Bin.Paste.Example',
      port: 8443,
      denied: true,
      policy: 'ClusterAgentPolicy no-paste',
      reason: 'no paste sites',
      pattern: '*.paste.example',
    });
  });

  test("a host no guardrail denies: exit 0, the tool's own rules still decide; the port defaults to 443", async () => {
    const result = await evalEgress({ host: 'api.github.com' });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).egress, {
      host: 'api.github.com',
      port: 443,
      denied: false,
      reason: "no egress guardrail denies api.github.com; the tool's own egress rules decide",
    });
  });

  test('a guardrail narrowed to some tools applies to those only', async () => {
    const result = await evalEgress(
      { host: 'api.github.com' },
      { tool: 'write_file', arguments: { path: '/tmp/x' } },
    );
    assert.equal(result.code, 1, result.stderr);
    assert.equal(JSON.parse(result.stdout).egress.reason, 'writers never reach GitHub');
  });

  test('an auditOnly guardrail is reported apart and does not deny', async () => {
    const result = await evalEgress({ host: 'example.org' });
    assert.equal(result.code, 0, result.stderr);
    const { egress } = JSON.parse(result.stdout);
    assert.equal(egress.denied, false);
    assert.deepEqual(egress.audit, [
      {
        policy: 'ClusterAgentPolicy trial',
        reason: 'trying a new guardrail',
        pattern: 'example.org',
      },
    ]);
  });

  test('egress on a request that is not a tools/call, or a bad port, is bad input', async () => {
    const list = await evalEgress(
      { host: 'pastebin.com' },
      { method: 'tools/list', tool: undefined },
    );
    assert.equal(list.code, 2);
    assert.match(list.stderr, /egress: needs method tools\/call and a tool/);
    const port = await evalEgress({ host: 'pastebin.com', port: 70000 });
    assert.equal(port.code, 2);
    assert.match(port.stderr, /egress\.port/);
  });

  test('a guardrail with an IP address is refused by the CLI naming file and field', async () => {
    const bad = file('egress/bad.yaml', EGRESS_GUARDRAILS.replace('pastebin.com,', '10.0.0.1,'));
    const result = await mcpworks(
      'policy',
      'eval',
      '-f',
      policyFile,
      '-f',
      bad,
      '--request',
      request(),
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /bad\.yaml: .*no-paste.*spec\.egressDeny\[0\]\.hosts\[0\]/);
  });

  test('a ClusterAgentPolicy with neither rules nor egressDeny is refused', async () => {
    const empty = file(
      'egress/empty.yaml',
      'apiVersion: mcpworks.io/v1alpha1\nkind: ClusterAgentPolicy\nmetadata: { name: nothing }\nspec:\n  servers: { selector: {} }\n',
    );
    const result = await mcpworks(
      'policy',
      'eval',
      '-f',
      policyFile,
      '-f',
      empty,
      '--request',
      request(),
    );
    assert.equal(result.code, 2);
    assert.match(result.stderr, /set rules, egressDeny, or both/);
  });

  const casesFile = (cases: unknown[]) =>
    file(`egress/cases-${Math.random().toString(36).slice(2)}.yaml`, JSON.stringify({ cases }));

  test('policy test cases expect an egress verdict, with or without a call verdict', async () => {
    const cases = casesFile([
      {
        name: 'no pastebin',
        request: JSON.parse(request({ egress: { host: 'pastebin.com' } })),
        expect: 'Allow',
        expectEgress: 'Denied',
      },
      {
        name: 'github is fine',
        request: JSON.parse(request({ egress: { host: 'api.github.com' } })),
        expectEgress: 'NotDenied',
      },
    ]);
    const result = await mcpworks('policy', 'test', '-f', policyFile, '-f', guardrails, cases);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(
      result.stdout,
      /^PASS {2}no pastebin: Allow \(.*\); egress to pastebin\.com: Denied by ClusterAgentPolicy no-paste \(no paste sites\)$/m,
    );
    assert.match(result.stdout, /^PASS {2}github is fine: egress to api\.github\.com: NotDenied/m);
  });

  test('an egress mismatch exits 1 and names what denied it', async () => {
    const cases = casesFile([
      {
        name: 'wrong',
        request: JSON.parse(request({ egress: { host: 'a.paste.example' } })),
        expectEgress: 'NotDenied',
      },
    ]);
    const result = await mcpworks('policy', 'test', '-f', policyFile, '-f', guardrails, cases);
    assert.equal(result.code, 1);
    assert.match(
      result.stdout,
      /^FAIL {2}wrong: expected egress NotDenied, got egress to a\.paste\.example: Denied by ClusterAgentPolicy no-paste/m,
    );
  });

  test('expectEgress without request.egress is an invalid case (exit 2)', async () => {
    const cases = casesFile([
      { name: 'no host', request: JSON.parse(request()), expectEgress: 'Denied' },
    ]);
    const result = await mcpworks('policy', 'test', '-f', policyFile, '-f', guardrails, cases);
    assert.equal(result.code, 2);
    assert.match(
      result.stdout,
      /^ERROR no host: .*cases\[0\]\.request\.egress: required by expectEgress/m,
    );
  });
});

describe('mcpworks audit verify', () => {
  function writeLog(
    name: string,
    count: number,
    edit: (lines: string[]) => string[] = (l) => l,
  ): string {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    const logger = createLogger({ destination, level: 'info' });
    logger.info('gateway listening');
    const recorder = createDecisionRecorder({
      sinks: [jsonLineDecisionSink({ write: (line: string) => destination.write(line) })],
      clock: manualClock(),
      writerId: 'gw-0',
    });
    for (let i = 0; i < count; i++) recorder.record(entry({ durationMs: i }));
    return file(name, `${edit(lines).join('\n')}\n`);
  }

  test('an intact log exits 0', async () => {
    const result = await mcpworks('audit', 'verify', writeLog('intact.log', 4));
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /intact: 4 records from 1 writer/);
  });

  test('an altered record exits 1 naming its line', async () => {
    const log = writeLog('altered.log', 4, (lines) =>
      lines.map((l, i) => (i === 3 ? l.replace('"effect":"Allow"', '"effect":"Deny"') : l)),
    );
    const result = await mcpworks('audit', 'verify', log);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /BROKEN \(altered\) at line 4/);
  });

  test('a deleted record exits 1', async () => {
    const result = await mcpworks(
      'audit',
      'verify',
      writeLog('deleted.log', 4, (lines) => lines.filter((_, i) => i !== 2)),
    );
    assert.equal(result.code, 1);
    assert.match(result.stdout, /BROKEN \(deleted\)/);
  });

  test('a truncated tail exits 1 when the last seq is given', async () => {
    const log = writeLog('truncated.log', 4, (lines) => lines.slice(0, -1));
    assert.equal((await mcpworks('audit', 'verify', log)).code, 0);
    const result = await mcpworks('audit', 'verify', log, '--expect-last', 'gw-0=3');
    assert.equal(result.code, 1);
    assert.match(result.stdout, /BROKEN \(truncated\)/);
  });

  test('--json prints the report', async () => {
    const result = await mcpworks('audit', 'verify', writeLog('json.log', 2), '--json');
    assert.equal(JSON.parse(result.stdout).records, 2);
  });

  test('a missing file, a log without records, and bad flags exit 2', async () => {
    assert.equal((await mcpworks('audit', 'verify', join(dir, 'none.log'))).code, 2);
    assert.equal(
      (await mcpworks('audit', 'verify', file('other.log', '{"msg":"hello"}\n'))).code,
      2,
    );
    assert.equal((await mcpworks('audit', 'verify')).code, 2);
    assert.equal((await mcpworks('audit', 'verify', 'x.log', '--expect-last', 'nonsense')).code, 2);
    assert.equal((await mcpworks('audit', 'check', 'x.log')).code, 2);
  });
});

describe('mcpworks audit keygen and verify --public-key', () => {
  /** Runs keygen into fresh files; returns the Secret's private key and the public key file. */
  async function keygen(name: string): Promise<{ privateKey: KeyObject; publicKeyFile: string }> {
    const result = await mcpworks(
      'audit',
      'keygen',
      '--name',
      'audit-signing',
      '--namespace',
      'team',
      '--secret-file',
      `${name}.secret.yaml`,
      '--public-key-file',
      `${name}.pub.pem`,
    );
    assert.equal(result.code, 0, result.stderr);
    const secret = parse(readFileSync(join(dir, `${name}.secret.yaml`), 'utf8')) as {
      kind: string;
      type: string;
      metadata: { name: string; namespace: string; annotations: Record<string, string> };
      data: Record<string, string>;
    };
    assert.equal(secret.kind, 'Secret');
    assert.equal(secret.type, 'Opaque');
    assert.deepEqual([secret.metadata.name, secret.metadata.namespace], ['audit-signing', 'team']);
    assert.deepEqual(Object.keys(secret.data), ['ed25519.key']);
    assert.equal(statSync(join(dir, `${name}.secret.yaml`)).mode & 0o777, 0o600);
    const privateKey = parseSigningKey(
      Buffer.from(secret.data['ed25519.key'] as string, 'base64').toString('utf8'),
    );
    assert.equal(secret.metadata.annotations['mcpworks.io/audit-key-id'], keyIdOf(privateKey));
    assert.match(result.stderr, new RegExp(`key ${keyIdOf(privateKey)}`));
    return { privateKey, publicKeyFile: join(dir, `${name}.pub.pem`) };
  }

  function signedLog(name: string, writers: [string, KeyObject | undefined][]): string {
    const lines: string[] = [];
    for (const [writerId, signingKey] of writers) {
      const recorder = createDecisionRecorder({
        sinks: [jsonLineDecisionSink({ write: (line: string) => lines.push(line) })],
        clock: manualClock(),
        writerId,
        ...(signingKey === undefined ? {} : { signingKey }),
      });
      for (let i = 0; i < 3; i++) recorder.record(entry({ durationMs: i }));
    }
    return file(name, lines.join(''));
  }

  test('a log signed with a keygen key verifies with its public key; without it, the report says identity was not checked', async () => {
    const { privateKey, publicKeyFile } = await keygen('one');
    const log = signedLog('signed.log', [['gw-0', privateKey]]);
    const checked = await mcpworks('audit', 'verify', log, '--public-key', publicKeyFile);
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.match(
      checked.stdout,
      new RegExp(`signed: every record, by key\\(s\\) ${keyIdOf(privateKey)}`),
    );
    assert.doesNotMatch(checked.stdout, /not checked/);
    const unchecked = await mcpworks('audit', 'verify', log);
    assert.equal(unchecked.code, 0);
    assert.match(unchecked.stdout, /note: writer identity was not checked \(no public key given\)/);
  });

  test('an unsigned writer, a foreign key and a rotation, through the CLI', async () => {
    const one = await keygen('rot-1');
    const two = await keygen('rot-2');
    const rotated = signedLog('rotated.log', [
      ['gw-old', one.privateKey],
      ['gw-new', two.privateKey],
    ]);
    const both = await mcpworks(
      'audit',
      'verify',
      rotated,
      '--public-key',
      one.publicKeyFile,
      '--public-key',
      two.publicKeyFile,
    );
    assert.equal(both.code, 0, both.stdout);
    const combined = file(
      'both.pem',
      readFileSync(one.publicKeyFile, 'utf8') + readFileSync(two.publicKeyFile, 'utf8'),
    );
    assert.equal((await mcpworks('audit', 'verify', rotated, '--public-key', combined)).code, 0);
    const onlyOne = await mcpworks('audit', 'verify', rotated, '--public-key', one.publicKeyFile);
    assert.equal(onlyOne.code, 1);
    assert.match(onlyOne.stdout, /BROKEN \(unknown-key\) at line 4: .*writer gw-new, seq 0/);
    const mixed = signedLog('mixed.log', [
      ['gw-a', one.privateKey],
      ['gw-b', undefined],
    ]);
    const unsigned = await mcpworks(
      'audit',
      'verify',
      mixed,
      '--public-key',
      one.publicKeyFile,
      '--json',
    );
    assert.equal(unsigned.code, 1);
    const report = JSON.parse(unsigned.stdout);
    assert.deepEqual(
      [report.break.problem, report.break.line, report.break.writerId],
      ['unsigned', 4, 'gw-b'],
    );
  });

  test('keygen with only --public-key-file prints the Secret, and refuses to overwrite or to print both', async () => {
    const printed = await mcpworks(
      'audit',
      'keygen',
      '--name',
      'k',
      '--public-key-file',
      'k.pub.pem',
    );
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /^# Ed25519 signing key [0-9a-f]{16} /);
    assert.match(printed.stdout, /\nkind: Secret\n/);
    assert.doesNotMatch(printed.stdout, /PUBLIC KEY/);
    const again = await mcpworks(
      'audit',
      'keygen',
      '--name',
      'k',
      '--public-key-file',
      'k.pub.pem',
    );
    assert.equal(again.code, 1);
    assert.match(again.stderr, /cannot write k\.pub\.pem: EEXIST/);
    const neither = await mcpworks('audit', 'keygen', '--name', 'k');
    assert.equal(neither.code, 2);
    assert.match(neither.stderr, /give --secret-file or --public-key-file/);
    const badName = await mcpworks('audit', 'keygen', '--name', 'Not_A_Name', '--secret-file', 'x');
    assert.equal(badName.code, 2);
    assert.match(badName.stderr, /--name "Not_A_Name" must be a lowercase RFC 1123 subdomain/);
  });

  test('a --public-key file without an Ed25519 public key is bad input (exit 2)', async () => {
    const log = signedLog('any.log', [['gw-0', undefined]]);
    const text = file('not-a-key.pem', 'hello\n');
    const result = await mcpworks('audit', 'verify', log, '--public-key', text);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /--public-key \S+not-a-key\.pem: no "-----BEGIN PUBLIC KEY-----" block/,
    );
  });
});

describe('as real processes', () => {
  const run = promisify(execFile);
  const cli = join(repoRoot, 'src/cli/main.ts');
  const exitCode = async (args: string[]) => {
    try {
      await run(process.execPath, [cli, ...args], { cwd: dir });
      return 0;
    } catch (error) {
      return (error as { code: number }).code;
    }
  };

  test('policy eval exits 0 for Allow and 1 for Deny', async () => {
    assert.equal(await exitCode(['policy', 'eval', '-f', policyFile, '--request', request()]), 0);
    assert.equal(
      await exitCode(['policy', 'eval', '-f', policyFile, '--request', request({ tool: 'rm' })]),
      1,
    );
  });

  test('audit verify exits 1 for a broken log', async () => {
    const log = writeBroken();
    assert.equal(await exitCode(['audit', 'verify', log]), 1);
  });

  test('audit verify reads a log from standard input with "-"', async () => {
    const recorder = createDecisionRecorder({
      sinks: [],
      clock: manualClock(),
      writerId: 'gw-stdin',
    });
    const text = [0, 1, 2].map(() => decisionLine(recorder.record(entry()))).join('\n');
    const child = execFile(process.execPath, [cli, 'audit', 'verify', '-'], { cwd: dir });
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stdin?.end(text);
    const code = await new Promise<number | null>((done) => child.on('close', done));
    assert.equal(code, 0);
    assert.match(stdout, /intact: 3 records/);
  });

  function writeBroken(): string {
    const recorder = createDecisionRecorder({ sinks: [], clock: manualClock(), writerId: 'gw-9' });
    const records = [0, 1, 2].map(() => recorder.record(entry()));
    return file(
      'broken-process.log',
      [records[0], records[2]].map((r) => decisionLine(r!)).join('\n'),
    );
  }
});
