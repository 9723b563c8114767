import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { RESERVED_ENV_NAMES } from '../../api/v1alpha1/mcpserver.ts';
import { DEFAULT_SECCOMP_POLICY } from '../sandbox-executor.ts';
import type { EgressAttempt } from './proxy.ts';
import {
  egressEnvironment,
  egressLogSummary,
  egressRecords,
  egressSeccompPolicy,
  EGRESS_RELAY_PORT,
  MAX_DIRECT_ATTEMPTS,
  sandboxReportedAttempts,
} from './jail.ts';

const attempt = (n: number, allowed = true, reason = 'allowed'): EgressAttempt =>
  ({
    host: `h${n}.test`,
    port: 443,
    allowed,
    reason,
    bytesUp: n,
    bytesDown: 0,
    durationMs: 1,
  }) as EgressAttempt;

describe('egress sandbox environment', () => {
  test('points every proxy variable at the relay and both CA variables at the bound bundle', () => {
    const env = egressEnvironment();
    const relay = `http://127.0.0.1:${EGRESS_RELAY_PORT}`;
    for (const name of ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'])
      assert.equal(env[name], relay, name);
    assert.equal(env['NO_PROXY'], '');
    assert.equal(env['NODE_USE_ENV_PROXY'], '1');
    assert.equal(env['SSL_CERT_FILE'], '/run/mcpworks/ca.crt');
    assert.equal(env['NODE_EXTRA_CA_CERTS'], '/run/mcpworks/ca.crt');
    assert.equal(env['MCPWORKS_EGRESS_SOCKET'], '/run/mcpworks/egress.sock');
  });

  test('every variable a tool could use to redirect or re-trust is reserved', () => {
    for (const name of Object.keys(egressEnvironment()).filter((n) => !n.startsWith('MCPWORKS_')))
      assert.ok((RESERVED_ENV_NAMES as readonly string[]).includes(name), name);
  });
});

describe('egress seccomp variant', () => {
  const base = readFileSync(DEFAULT_SECCOMP_POLICY, 'utf8');

  test('differs from the shipped policy only in the socket rule and its defines', () => {
    const variant = egressSeccompPolicy(base);
    assert.match(variant, /#define AF_INET 2\n/);
    assert.match(
      variant,
      /socket \{ family == AF_UNIX \|\| \(\(family == AF_INET \|\| family == AF_INET6\) && \(type & SOCK_TYPE_MASK\) == SOCK_STREAM && \(protocol == 0 \|\| protocol == IPPROTO_TCP\)\) \}/,
    );
    assert.ok(!variant.includes('socket { family == AF_UNIX },'));
    const removed = base.split('\n').filter((line) => !variant.split('\n').includes(line));
    assert.equal(removed.length, 1, `only the socket line changes: ${removed.join('|')}`);
    assert.match(removed[0]!, /socket \{ family == AF_UNIX \}/);
  });

  test('refuses a policy it cannot derive from (a custom one) instead of guessing', () => {
    assert.throws(() => egressSeccompPolicy('USE x DEFAULT ERRNO(1)'), /no single/);
    const twice = base.replace('socketpair', 'socket { family == AF_UNIX }, socketpair');
    assert.throws(() => egressSeccompPolicy(twice), /no single/);
  });
});

describe('egress records', () => {
  test('keeps the first 64 attempts in order and counts the rest', () => {
    const all = Array.from({ length: 70 }, (_, n) => attempt(n));
    const { egress, omitted } = egressRecords(all);
    assert.equal(egress.length, 64);
    assert.deepEqual(
      egress.map((record) => record.bytesUp),
      Array.from({ length: 64 }, (_, n) => n),
    );
    assert.equal(omitted, 6);
    assert.deepEqual(egressRecords([attempt(1)]), { egress: [attempt(1)], omitted: 0 });
  });

  test('the log summary counts denials by reason and carries no host or payload', () => {
    const summary = egressLogSummary([
      attempt(1),
      attempt(2, false, 'not-declared'),
      attempt(3, false, 'not-declared'),
      attempt(4, false, 'policy-denied'),
    ]);
    assert.deepEqual(summary, {
      attempts: 4,
      denied: 3,
      deniedByReason: { 'not-declared': 2, 'policy-denied': 1 },
    });
  });
});

describe('sandboxReportedAttempts', () => {
  test('turns the frame entries into refusals (not-proxied), never allowed', () => {
    const attempts = sandboxReportedAttempts({
      ok: true,
      direct: [
        { kind: 'tcp', host: '1.1.1.1', port: 443 },
        { kind: 'udp', host: '', port: 0 },
        { kind: 'name', host: 'example.com', port: 443, allowed: true },
      ],
    });
    assert.deepEqual(
      attempts.map((a) => [a.host, a.port, a.allowed, a.reason, a.bytesUp, a.bytesDown]),
      [
        ['1.1.1.1', 443, false, 'not-proxied', 0, 0],
        ['', 0, false, 'not-proxied', 0, 0],
        ['example.com', 443, false, 'not-proxied', 0, 0],
      ],
    );
    assert.match(attempts[0]!.detail!, /^a TCP connection without the proxy/);
    assert.match(attempts[2]!.detail!, /^a name look-up without the proxy/);
  });

  test('drops what is malformed and keeps at most MAX_DIRECT_ATTEMPTS', () => {
    assert.deepEqual(sandboxReportedAttempts(undefined), []);
    assert.deepEqual(sandboxReportedAttempts({ direct: 'tcp' }), []);
    assert.deepEqual(
      sandboxReportedAttempts({
        direct: [
          { kind: 'smtp', host: 'x', port: 25 },
          { kind: 'tcp', host: 'x'.repeat(254), port: 443 },
          { kind: 'tcp', host: 'x', port: 70_000 },
          { kind: 'tcp', host: 'x', port: 1.5 },
          { kind: 'tcp', host: 7, port: 443 },
          null,
        ],
      }),
      [],
    );
    const many = Array.from({ length: 40 }, () => ({ kind: 'udp', host: '', port: 0 }));
    assert.equal(sandboxReportedAttempts({ direct: many }).length, MAX_DIRECT_ATTEMPTS);
  });
});
