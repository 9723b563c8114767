import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMcpworksError } from '../../shared/errors.ts';
import {
  decideEgress,
  hostMatches,
  hostProblem,
  normaliseDenials,
  parseConnectAuthority,
  parseEgressRules,
  type EgressRule,
} from './allowlist.ts';

function problemsOf(input: unknown): string {
  try {
    parseEgressRules(input);
  } catch (error) {
    assert.ok(isMcpworksError(error, 'InvalidInput'));
    return error.message;
  }
  assert.fail('expected the rules to be refused');
}

describe('parseEgressRules', () => {
  test('lower-cases hosts, drops a trailing dot, defaults ports to 443, sorts and dedupes them', () => {
    assert.deepEqual(
      parseEgressRules([
        { host: 'API.GitHub.com.' },
        { host: '*.Internal.Example.com', ports: [8443, 443, 8443] },
      ]),
      [
        { host: 'api.github.com', ports: [443] },
        { host: '*.internal.example.com', ports: [443, 8443] },
      ],
    );
  });

  test('accepts punycode names and an empty list', () => {
    assert.deepEqual(parseEgressRules([{ host: 'xn--bcher-kva.example' }]), [
      { host: 'xn--bcher-kva.example', ports: [443] },
    ]);
    assert.deepEqual(parseEgressRules([]), []);
  });

  test('refuses non-ASCII names and says to use punycode', () => {
    assert.match(problemsOf([{ host: 'bücher.example' }]), /0\.host: .*punycode/);
  });

  test('refuses IP literals', () => {
    assert.match(problemsOf([{ host: '169.254.169.254' }]), /IP address/);
    assert.match(problemsOf([{ host: '::1' }]), /IP address/);
    assert.match(problemsOf([{ host: '[2001:db8::1]' }]), /IP address/);
  });

  test('refuses wildcards other than a whole first label over at least two labels', () => {
    assert.match(problemsOf([{ host: '*' }]), /wildcard/);
    assert.match(problemsOf([{ host: '*.com' }]), /top-level/);
    assert.match(problemsOf([{ host: 'api.*.example.com' }]), /whole first label/);
    assert.match(problemsOf([{ host: '*api.example.com' }]), /whole first label/);
    assert.match(problemsOf([{ host: '*.*.example.com' }]), /wildcard/);
  });

  test('refuses malformed names', () => {
    for (const host of [
      'a..b',
      '-a.example',
      'a_b.example',
      'a b.example',
      'example.com:443',
      '1.2.3',
      `${'a'.repeat(64)}.example`,
    ]) {
      assert.match(problemsOf([{ host }]), /not a valid DNS name|IP address/, host);
    }
  });

  test('refuses bad ports and unknown members', () => {
    assert.match(problemsOf([{ host: 'a.example', ports: [0] }]), /0\.ports\.0/);
    assert.match(problemsOf([{ host: 'a.example', ports: [65_536] }]), /0\.ports\.0/);
    assert.match(problemsOf([{ host: 'a.example', ports: [] }]), /0\.ports/);
    assert.match(problemsOf([{ host: 'a.example', port: 443 }]), /port/);
    assert.match(problemsOf({ host: 'a.example' }), /\(rules\)/);
  });
});

describe('hostMatches', () => {
  test('an exact host matches only itself', () => {
    assert.equal(hostMatches('api.github.com', 'api.github.com'), true);
    assert.equal(hostMatches('api.github.com', 'x.api.github.com'), false);
    assert.equal(hostMatches('api.github.com', 'github.com'), false);
  });

  test('a wildcard matches one or more labels in front of its suffix, not the suffix itself', () => {
    assert.equal(hostMatches('*.example.com', 'a.example.com'), true);
    assert.equal(hostMatches('*.example.com', 'a.b.example.com'), true);
    assert.equal(hostMatches('*.example.com', 'example.com'), false);
    assert.equal(hostMatches('*.example.com', 'badexample.com'), false);
    assert.equal(hostMatches('*.example.com', 'a.example.com.evil.net'), false);
  });
});

describe('decideEgress', () => {
  const rules: EgressRule[] = parseEgressRules([
    { host: 'api.github.com' },
    { host: '*.internal.example.com', ports: [443, 8443] },
  ]);

  test('allows a declared host on a declared port, case-insensitively', () => {
    const decision = decideEgress(rules, 'API.github.com', 443);
    assert.equal(decision.allowed, true);
    assert.equal(decision.reason, 'allowed');
    assert.equal(decision.host, 'api.github.com');
    assert.equal(decideEgress(rules, 'db.internal.example.com', 8443).allowed, true);
  });

  test('refuses each case with its reason', () => {
    const reasonOf = (host: string, port: number) => decideEgress(rules, host, port).reason;
    assert.equal(reasonOf('github.com', 443), 'not-declared');
    assert.equal(reasonOf('internal.example.com', 443), 'not-declared');
    assert.equal(reasonOf('api.github.com', 80), 'port-not-declared');
    assert.equal(reasonOf('140.82.112.3', 443), 'raw-ip');
    assert.equal(reasonOf('[::1]', 443), 'raw-ip');
    assert.equal(reasonOf('a_b.example', 443), 'invalid-host');
    assert.equal(reasonOf('bücher.example', 443), 'invalid-host');
    assert.equal(reasonOf('2130706433', 443), 'invalid-host');
  });

  test('no rules means no egress at all', () => {
    assert.equal(decideEgress([], 'api.github.com', 443).reason, 'not-declared');
  });

  test('a guardrail denial wins over the tool declaring the host, and names its policy', () => {
    const denials = normaliseDenials([
      { hosts: ['API.GitHub.com.'], policy: 'ClusterAgentPolicy no-github', reason: 'no SCM' },
      { hosts: ['*.Example.com'], policy: 'ClusterAgentPolicy no-example', reason: 'internal' },
    ]);
    assert.deepEqual(decideEgress(rules, 'api.github.com', 443, denials), {
      allowed: false,
      reason: 'policy-denied',
      host: 'api.github.com',
      policy: 'ClusterAgentPolicy no-github',
      detail: 'no SCM',
    });
    const wildcard = decideEgress(rules, 'db.internal.example.com', 8443, denials);
    assert.equal(wildcard.reason, 'policy-denied');
    assert.equal(
      wildcard.allowed === false && 'policy' in wildcard && wildcard.policy,
      'ClusterAgentPolicy no-example',
    );
  });

  test('a denial that matches nothing leaves the rules alone; raw IPs stay raw-ip', () => {
    const denials = normaliseDenials([
      { hosts: ['github.com', 'not a host'], policy: 'ClusterAgentPolicy p', reason: 'r' },
    ]);
    assert.equal(decideEgress(rules, 'api.github.com', 443, denials).reason, 'allowed');
    assert.equal(decideEgress(rules, '140.82.112.3', 443, denials).reason, 'raw-ip');
    assert.deepEqual(denials[0]!.hosts, ['github.com', 'not a host']);
  });
});

describe('parseConnectAuthority', () => {
  test('splits host:port and [v6]:port', () => {
    assert.deepEqual(parseConnectAuthority('api.github.com:443'), {
      host: 'api.github.com',
      port: 443,
    });
    assert.deepEqual(parseConnectAuthority('[::1]:8443'), { host: '[::1]', port: 8443 });
  });

  test('refuses anything else', () => {
    for (const authority of [
      'api.github.com',
      'api.github.com:',
      ':443',
      'a:0',
      'a:65536',
      'a:443/x',
      'u@a:443',
      'http://a:443',
      'a b:443',
      '::1:443',
    ]) {
      assert.equal(parseConnectAuthority(authority), undefined, authority);
    }
  });
});

describe('hostProblem', () => {
  test('is undefined for a good name and a good wildcard', () => {
    assert.equal(hostProblem('api.github.com'), undefined);
    assert.equal(hostProblem('*.internal.example.com'), undefined);
  });
});
