import assert from 'node:assert/strict';
import { test } from 'node:test';
import { McpServerSchema, type McpServer } from '../api/v1alpha1/mcpserver.ts';
import { desiredExecutorNetworkPolicy, desiredGatewayRole } from './desired-access.ts';
import {
  DEFAULT_WORKLOAD_OPTIONS,
  desiredExecutorDeployment,
  desiredGatewayDeployment,
  desiredService,
  EXECUTOR_SECRETS_DIR,
  hasAllocatedClusterIp,
  secretVolumeName,
} from './desired-workloads.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- assertions read deep into built objects */

function server(modify: (s: any) => void = () => {}): McpServer {
  const raw: any = {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    metadata: { name: 'demo', namespace: 'team-a', uid: 'uid-1', generation: 1 },
    spec: {
      auth: { anonymous: { enabled: true } },
      tools: [{ name: 'echo', description: 'echo', runtime: 'python', code: 'print(1)' }],
    },
  };
  modify(raw);
  return McpServerSchema.parse(raw);
}

const token = { hash: 'abc' };
const podSpec = (d: any) => d.spec.template.spec;
const hashOf = (d: any) => d.spec.template.metadata.annotations['mcpworks.io/spec-hash'];

test('gateway pods meet the restricted Pod Security Standard', () => {
  const pod = podSpec(desiredGatewayDeployment(server(), token, DEFAULT_WORKLOAD_OPTIONS));
  const sc = pod.containers[0].securityContext;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
  assert.equal(sc.allowPrivilegeEscalation, false);
  assert.deepEqual(sc.capabilities, { drop: ['ALL'] });
  assert.equal(sc.readOnlyRootFilesystem, true);
});

const executorPod = (mode?: string, options = DEFAULT_WORKLOAD_OPTIONS) =>
  podSpec(
    desiredExecutorDeployment(
      server((s) => {
        if (mode !== undefined) s.spec.executor = { securityMode: mode };
      }),
      token,
      options,
    ),
  );

test('Standard executor pods: exactly the measured privileges, RuntimeDefault seccomp, chroot', () => {
  const pod = executorPod();
  const container = pod.containers[0];
  assert.equal(pod.automountServiceAccountToken, false);
  assert.equal(pod.hostUsers, undefined);
  assert.deepEqual(pod.securityContext, { seccompProfile: { type: 'RuntimeDefault' } });
  assert.deepEqual(container.securityContext, {
    runAsUser: 0,
    runAsNonRoot: false,
    readOnlyRootFilesystem: true,
    seccompProfile: { type: 'RuntimeDefault' },
    appArmorProfile: { type: 'Unconfined' },
    privileged: false,
    capabilities: { drop: ['ALL'], add: ['SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_CHROOT'] },
  });
  assert.ok(container.args.includes('--no-pivot-root'));
  assert.ok(container.resources.limits.memory);
});

test('UserNamespace executor pods: hostUsers false, /proc unmasked, otherwise as Standard', () => {
  const pod = executorPod('UserNamespace');
  const sc = pod.containers[0].securityContext;
  assert.equal(pod.hostUsers, false);
  assert.equal(sc.procMount, 'Unmasked');
  assert.equal(sc.privileged, false);
  assert.deepEqual(sc.capabilities.add, ['SYS_ADMIN', 'SETUID', 'SETGID', 'SYS_CHROOT']);
  assert.equal(sc.seccompProfile.type, 'RuntimeDefault');
  assert.ok(pod.containers[0].args.includes('--no-pivot-root'));
});

test('Privileged executor pods: privileged, and nsjail keeps pivot_root', () => {
  const pod = executorPod('Privileged');
  const sc = pod.containers[0].securityContext;
  assert.equal(sc.privileged, true);
  assert.equal(sc.capabilities, undefined);
  assert.equal(pod.hostUsers, undefined);
  assert.ok(!pod.containers[0].args.includes('--no-pivot-root'));
});

test("the McpServer's securityMode wins over the operator's default; unset takes the default", () => {
  const options = { ...DEFAULT_WORKLOAD_OPTIONS, executorSecurityMode: 'UserNamespace' as const };
  assert.equal(executorPod(undefined, options).hostUsers, false);
  assert.equal(executorPod('Standard', options).hostUsers, undefined);
});

test('a security mode change rolls the executor pods', () => {
  const hash = (mode: string) =>
    hashOf(
      desiredExecutorDeployment(
        server((s) => (s.spec.executor = { securityMode: mode })),
        token,
        DEFAULT_WORKLOAD_OPTIONS,
      ),
    );
  assert.notEqual(hash('Standard'), hash('UserNamespace'));
});

test('an unknown securityMode is rejected by the schema', () => {
  assert.throws(() => server((s) => (s.spec.executor = { securityMode: 'Root' })));
});

test('a start-up failure becomes the termination message; readiness waits for the self-test', () => {
  const container = executorPod().containers[0];
  assert.equal(container.terminationMessagePath, '/dev/termination-log');
  assert.equal(container.terminationMessagePolicy, 'FallbackToLogsOnError');
  assert.ok(container.args.includes('--termination-message-path=/dev/termination-log'));
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
});

test('executors use the sandbox roots prepared in the image, not copies in their memory /tmp', () => {
  const pod = podSpec(desiredExecutorDeployment(server(), token, DEFAULT_WORKLOAD_OPTIONS));
  assert.ok(pod.containers[0].args.includes('--runtime-roots=/opt/mcpworks/runtime-roots'));
});

test('a stopping gateway keeps serving while kube-proxy learns it is terminating', () => {
  const pod = podSpec(desiredGatewayDeployment(server(), token, DEFAULT_WORKLOAD_OPTIONS));
  assert.ok(pod.containers[0].args.includes('--shutdown-delay-seconds=5'));
  // The delay fits in the default grace period, so the drain after it is not cut short.
  assert.equal(pod.terminationGracePeriodSeconds, undefined);
});

test('a stopping executor keeps accepting calls, then drains, within its grace period', () => {
  const pod = podSpec(desiredExecutorDeployment(server(), token, DEFAULT_WORKLOAD_OPTIONS));
  assert.ok(pod.containers[0].args.includes('--shutdown-delay-seconds=10'));
  assert.ok(pod.containers[0].args.includes('--drain-seconds=30'));
  assert.ok(pod.terminationGracePeriodSeconds > 10 + 30 + 6); // delay, drain, idle connections
});

test('a tool change changes the gateway spec hash; the same spec gives the same hash', () => {
  const a = desiredGatewayDeployment(server(), token, DEFAULT_WORKLOAD_OPTIONS);
  const same = desiredGatewayDeployment(server(), token, DEFAULT_WORKLOAD_OPTIONS);
  const changed = desiredGatewayDeployment(
    server((s) => (s.spec.tools[0].code = 'print(2)')),
    token,
    DEFAULT_WORKLOAD_OPTIONS,
  );
  assert.equal(hashOf(a), hashOf(same));
  assert.notEqual(hashOf(a), hashOf(changed));
});

test('a token rotation changes both pod templates', () => {
  const rotated = { hash: 'def' };
  const s = server();
  assert.notEqual(
    hashOf(desiredGatewayDeployment(s, token, DEFAULT_WORKLOAD_OPTIONS)),
    hashOf(desiredGatewayDeployment(s, rotated, DEFAULT_WORKLOAD_OPTIONS)),
  );
  assert.notEqual(
    hashOf(desiredExecutorDeployment(s, token, DEFAULT_WORKLOAD_OPTIONS)),
    hashOf(desiredExecutorDeployment(s, rotated, DEFAULT_WORKLOAD_OPTIONS)),
  );
});

test('children are controller-owned by their McpServer', () => {
  const owner = (
    desiredGatewayDeployment(server(), token, DEFAULT_WORKLOAD_OPTIONS).metadata as any
  ).ownerReferences[0];
  assert.deepEqual(owner, {
    apiVersion: 'mcpworks.io/v1alpha1',
    kind: 'McpServer',
    name: 'demo',
    uid: 'uid-1',
    controller: true,
    blockOwnerDeletion: true,
  });
});

test('the executor NetworkPolicy admits only its gateway pods and denies all egress', () => {
  const spec = desiredExecutorNetworkPolicy(server(), DEFAULT_WORKLOAD_OPTIONS.executorDns)
    .spec as any;
  assert.deepEqual(spec.policyTypes, ['Ingress', 'Egress']);
  assert.deepEqual(spec.egress, []);
  assert.equal(spec.ingress.length, 1);
  assert.equal(
    spec.ingress[0].from[0].podSelector.matchLabels['app.kubernetes.io/component'],
    'gateway',
  );
  assert.equal(
    spec.ingress[0].from[0].podSelector.matchLabels['app.kubernetes.io/instance'],
    'demo',
  );
});

test('the gateway Role names its API-key Secret and no other', () => {
  const role = desiredGatewayRole(
    server((s) => (s.spec.auth = { apiKeys: { secretRef: { name: 'keys' } } })),
  ) as any;
  const secretRules = role.rules.filter((r: any) => r.resources.includes('secrets'));
  assert.deepEqual(secretRules, [
    {
      apiGroups: [''],
      resources: ['secrets'],
      resourceNames: ['keys'],
      verbs: ['get', 'list', 'watch'],
    },
  ]);
  const without = desiredGatewayRole(server()) as any;
  assert.equal(without.rules.filter((r: any) => r.resources.includes('secrets')).length, 0);
});

test('the executor Service is headless: no ClusterIP to allocate, the gateway resolves its pods', () => {
  assert.equal((desiredService(server(), 'executor') as any).spec.clusterIP, 'None');
});

test('the gateway Service keeps a ClusterIP (agents reach it through kube-proxy)', () => {
  assert.equal((desiredService(server(), 'gateway') as any).spec.clusterIP, undefined);
});

test('an executor Service that already holds a ClusterIP keeps it (the field is immutable)', () => {
  assert.equal((desiredService(server(), 'executor', true) as any).spec.clusterIP, undefined);
});

test('hasAllocatedClusterIp: an address counts, headless and not-yet-created do not', () => {
  const svc = (clusterIP?: string) => ({ spec: clusterIP === undefined ? {} : { clusterIP } });
  assert.equal(hasAllocatedClusterIp(svc('10.96.0.12')), true);
  assert.equal(hasAllocatedClusterIp(svc('None')), false);
  assert.equal(hasAllocatedClusterIp(svc()), false);
  assert.equal(hasAllocatedClusterIp(undefined), false);
});

test('without an audit signing key the gateway pod has no key volume, flag or fsGroup', () => {
  const pod = podSpec(desiredGatewayDeployment(server(), token, DEFAULT_WORKLOAD_OPTIONS));
  assert.deepEqual(
    pod.volumes.map((v: any) => v.name),
    ['tmp'],
  );
  assert.equal(pod.securityContext.fsGroup, undefined);
  assert.ok(!pod.containers[0].args.some((a: string) => a.startsWith('--audit-signing-key')));
});

test('an audit signing key Secret is mounted read-only, not optional, and passed to the gateway', () => {
  const signed = (key?: string) =>
    podSpec(
      desiredGatewayDeployment(
        server((s) => {
          s.spec.audit = { signingKeySecretRef: { name: 'audit-key', ...(key ? { key } : {}) } };
        }),
        token,
        DEFAULT_WORKLOAD_OPTIONS,
      ),
    );
  const pod = signed();
  const container = pod.containers[0];
  assert.deepEqual(pod.volumes[1], {
    name: 'audit-signing-key',
    secret: {
      secretName: 'audit-key',
      items: [{ key: 'ed25519.key', path: 'ed25519.key' }],
      defaultMode: 0o440,
      optional: false,
    },
  });
  assert.deepEqual(container.volumeMounts[1], {
    name: 'audit-signing-key',
    mountPath: '/etc/mcpworks/audit-signing',
    readOnly: true,
  });
  assert.ok(container.args.includes('--audit-signing-key=/etc/mcpworks/audit-signing/ed25519.key'));
  assert.equal(pod.securityContext.fsGroup, 65532, 'the 0440 key is readable by the gateway group');
  assert.equal(pod.securityContext.runAsNonRoot, true);
  // Another key name in the Secret lands at the same path.
  assert.deepEqual(signed('private.pem').volumes[1].secret.items, [
    { key: 'private.pem', path: 'ed25519.key' },
  ]);
});

test('setting or changing the signing key Secret rolls the gateway pods', () => {
  const hashes = [undefined, 'a', 'b'].map((name) =>
    hashOf(
      desiredGatewayDeployment(
        server((s) => {
          if (name) s.spec.audit = { signingKeySecretRef: { name } };
        }),
        token,
        DEFAULT_WORKLOAD_OPTIONS,
      ),
    ),
  );
  assert.equal(new Set(hashes).size, 3);
});

/** A python tool reading `vars` ([variable, secret, key]) through secretEnv. */
const secretTool = (name: string, vars: [string, string, string][]) => ({
  name,
  description: name,
  runtime: 'python',
  code: 'x',
  secretEnv: vars.map(([v, secret, key]) => ({ name: v, secretKeyRef: { name: secret, key } })),
});

const executorWith = (tools: unknown[], executor: Record<string, unknown> = {}) =>
  podSpec(
    desiredExecutorDeployment(
      server((s) => {
        s.spec.tools = tools;
        s.spec.executor = executor;
      }),
      token,
      DEFAULT_WORKLOAD_OPTIONS,
    ),
  );

test('no tool with secretEnv: no Secret volume, no --secrets-dir', () => {
  const pod = executorPod();
  assert.deepEqual(
    pod.volumes.map((v: any) => v.name),
    ['sandbox-tmp'],
  );
  assert.deepEqual(pod.containers[0].volumeMounts, [{ name: 'sandbox-tmp', mountPath: '/tmp' }]);
  assert.ok(!pod.containers[0].args.some((a: string) => a.startsWith('--secrets-dir')));
});

test('one optional, read-only Secret volume per referenced Secret, with exactly the referenced keys', () => {
  const pod = executorWith([
    secretTool('a', [
      ['GH', 'github', 'token'],
      ['GH_USER', 'github', 'user'],
    ]),
    secretTool('b', [
      ['GH2', 'github', 'token'],
      ['DB', 'db.creds', 'password'],
    ]),
  ]);
  const secrets = pod.volumes.filter((v: any) => v.secret);
  assert.deepEqual(secrets, [
    {
      name: secretVolumeName('db.creds'),
      secret: {
        secretName: 'db.creds',
        items: [{ key: 'password', path: 'password' }],
        defaultMode: 0o400,
        optional: true,
      },
    },
    {
      name: 'secret-github',
      secret: {
        secretName: 'github',
        items: [
          { key: 'token', path: 'token' },
          { key: 'user', path: 'user' },
        ],
        defaultMode: 0o400,
        optional: true,
      },
    },
  ]);
  const container = pod.containers[0];
  assert.deepEqual(
    container.volumeMounts.filter((m: any) => m.name.startsWith('secret-')),
    [
      {
        name: secretVolumeName('db.creds'),
        mountPath: `${EXECUTOR_SECRETS_DIR}/db.creds`,
        readOnly: true,
      },
      { name: 'secret-github', mountPath: `${EXECUTOR_SECRETS_DIR}/github`, readOnly: true },
    ],
  );
  assert.ok(container.volumeMounts.every((m: any) => m.subPath === undefined));
  assert.equal(
    container.args.filter((a: string) => a === '--secrets-dir=/var/run/mcpworks/secrets').length,
    1,
  );
  // every other executor setting is untouched by the secrets
  const plain = executorPod();
  assert.deepEqual(container.securityContext, plain.containers[0].securityContext);
  assert.equal(pod.automountServiceAccountToken, false);
  assert.deepEqual(
    container.args.filter((a: string) => !a.startsWith('--secrets-dir')),
    plain.containers[0].args,
  );
});

test('a key that can never be a Secret key is not a volume item (empty items would project every key)', () => {
  const pod = executorWith([
    secretTool('a', [
      ['A', 'only-bad', '..'],
      ['B', 'mixed', '..data'],
      ['C', 'mixed', 'ok'],
    ]),
  ]);
  const secrets = pod.volumes.filter((v: any) => v.secret);
  assert.deepEqual(
    secrets.map((v: any) => [v.secret.secretName, v.secret.items]),
    [['mixed', [{ key: 'ok', path: 'ok' }]]],
  );
});

test('Secret volume names are stable DNS labels, distinct for distinct Secrets', () => {
  const names = [
    'github',
    'db.creds',
    'db-creds',
    'a'.repeat(253),
    `${'a'.repeat(252)}b`,
    'x.y.z',
    'x-y.z',
  ];
  const volumes = names.map(secretVolumeName);
  for (const v of volumes) {
    assert.match(v, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    assert.ok(v.length <= 63, v);
  }
  assert.equal(new Set(volumes).size, names.length);
  assert.equal(secretVolumeName('db.creds'), secretVolumeName('db.creds'));
  assert.equal(secretVolumeName('github'), 'secret-github');
});

test('spec.executor.image replaces the operator default; unset keeps it', () => {
  const image = 'registry.example.com/team/sandbox-extra@sha256:' + 'a'.repeat(64);
  const custom = executorWith([secretTool('a', [])], { image });
  assert.equal(custom.containers[0].image, image);
  assert.equal(executorPod().containers[0].image, DEFAULT_WORKLOAD_OPTIONS.executorImage);
  assert.deepEqual(
    custom.containers[0].securityContext,
    executorPod().containers[0].securityContext,
  );
});

test('a new executor image rolls the executor pods', () => {
  const build = (executor: Record<string, unknown>) =>
    desiredExecutorDeployment(
      server((s) => (s.spec.executor = executor)),
      token,
      DEFAULT_WORKLOAD_OPTIONS,
    );
  assert.notEqual(
    hashOf(build({ image: 'team/sandbox:1' })),
    hashOf(build({ image: 'team/sandbox:2' })),
  );
});

test('tool Secrets reach the executor only: the gateway pods and the gateway Role never get them', () => {
  const s = server((raw) => {
    raw.spec.auth = { apiKeys: { secretRef: { name: 'keys' } } };
    raw.spec.tools = [secretTool('a', [['GH', 'github', 'token']])];
  });
  const gateway = podSpec(desiredGatewayDeployment(s, token, DEFAULT_WORKLOAD_OPTIONS));
  assert.ok(!JSON.stringify(gateway).includes('github'));
  const role = desiredGatewayRole(s) as any;
  const names = role.rules
    .filter((r: any) => r.resources.includes('secrets'))
    .flatMap((r: any) => r.resourceNames);
  assert.deepEqual(names, ['keys']);
});
