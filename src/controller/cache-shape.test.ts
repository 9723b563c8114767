import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EXECUTOR_SECURITY_MODES, McpServerSchema } from '../api/v1alpha1/mcpserver.ts';
import { childShapes, prune } from './cache-shape.ts';
import {
  DEFAULT_WORKLOAD_OPTIONS,
  desiredExecutorDeployment,
  desiredGatewayDeployment,
} from './desired-workloads.ts';
import { desiredExecutorNetworkPolicy } from './desired-access.ts';
import { upToDate } from './server-reconciler.ts';

/* eslint-disable @typescript-eslint/no-explicit-any -- builds a server-defaulted object */

const server = McpServerSchema.parse({
  apiVersion: 'mcpworks.io/v1alpha1',
  kind: 'McpServer',
  metadata: { name: 'demo', namespace: 'a', uid: 'u1' },
  spec: {
    auth: { anonymous: { enabled: true } },
    gateway: { resources: { limits: { cpu: '500m', memory: '1Gi' } } },
    tools: [{ name: 't', description: 't', runtime: 'python', code: 'x' }],
  },
});

/** The desired Deployment as the API server returns it: defaults and bookkeeping added. */
function asStored(): any {
  const d: any = structuredClone(
    desiredGatewayDeployment(server, { hash: 'h' }, DEFAULT_WORKLOAD_OPTIONS),
  );
  d.metadata.uid = 'x';
  d.metadata.resourceVersion = '42';
  d.metadata.creationTimestamp = '2026-01-01T00:00:00Z';
  d.spec.strategy = { type: 'RollingUpdate' };
  d.spec.template.spec.dnsPolicy = 'ClusterFirst';
  d.spec.template.spec.containers[0].imagePullPolicy = 'IfNotPresent';
  d.status = { observedGeneration: 1 };
  return d;
}

test('pruning keeps every field the controller compares, so an unchanged child stays up to date', () => {
  const shape = childShapes().get('Deployment');
  assert.ok(shape);
  const pruned = prune(asStored(), shape) as any;
  assert.ok(
    upToDate(desiredGatewayDeployment(server, { hash: 'h' }, DEFAULT_WORKLOAD_OPTIONS), pruned),
  );
  assert.equal(pruned.metadata.resourceVersion, '42');
  assert.deepEqual(pruned.status, { observedGeneration: 1 });
});

test('pruning drops what the server defaulted', () => {
  const pruned = prune(asStored(), childShapes().get('Deployment') ?? true) as any;
  assert.equal(pruned.spec.strategy, undefined);
  assert.equal(pruned.spec.template.spec.dnsPolicy, undefined);
  assert.equal(pruned.spec.template.spec.containers[0].imagePullPolicy, undefined);
  assert.equal(pruned.metadata.uid, undefined);
});

test('user-set resources survive pruning (resources are kept whole)', () => {
  const pruned = prune(asStored(), childShapes().get('Deployment') ?? true) as any;
  assert.deepEqual(pruned.spec.template.spec.containers[0].resources.limits, {
    cpu: '500m',
    memory: '1Gi',
  });
});

test('an executor Deployment of every security mode stays up to date after pruning', () => {
  const shape = childShapes().get('Deployment') ?? true;
  for (const executorSecurityMode of EXECUTOR_SECURITY_MODES) {
    const desired = desiredExecutorDeployment(
      server,
      { hash: 'h' },
      { ...DEFAULT_WORKLOAD_OPTIONS, executorSecurityMode },
    );
    assert.ok(
      upToDate(desired, prune(structuredClone(desired), shape) as any),
      executorSecurityMode,
    );
  }
});

test('a gateway Deployment with the audit signing key volume stays up to date after pruning', () => {
  const signed = McpServerSchema.parse({
    ...server,
    spec: { ...server.spec, audit: { signingKeySecretRef: { name: 'audit-key' } } },
  });
  const desired = desiredGatewayDeployment(signed, { hash: 'h' }, DEFAULT_WORKLOAD_OPTIONS);
  const pruned = prune(structuredClone(desired), childShapes().get('Deployment') ?? true) as any;
  assert.ok(upToDate(desired, pruned));
  assert.equal(pruned.spec.template.spec.volumes[1].secret.secretName, 'audit-key');
});

test('an executor Deployment with secretEnv volumes and its NetworkPolicy with egress stay up to date after pruning', () => {
  const tooled = McpServerSchema.parse({
    ...server,
    spec: {
      ...server.spec,
      tools: [
        {
          name: 't',
          description: 't',
          runtime: 'python',
          code: 'x',
          secretEnv: [{ name: 'TOKEN', secretKeyRef: { name: 'gh.creds', key: 'token' } }],
          egress: [{ host: 'api.github.com', ports: [443, 8443] }],
        },
      ],
    },
  });
  const deployment = desiredExecutorDeployment(tooled, { hash: 'h' }, DEFAULT_WORKLOAD_OPTIONS);
  const pruned = prune(structuredClone(deployment), childShapes().get('Deployment') ?? true) as any;
  assert.ok(upToDate(deployment, pruned));
  assert.deepEqual(pruned.spec.template.spec.volumes[1].secret.items, [
    { key: 'token', path: 'token' },
  ]);
  const policy = desiredExecutorNetworkPolicy(tooled, DEFAULT_WORKLOAD_OPTIONS.executorDns);
  const prunedPolicy = prune(
    structuredClone(policy),
    childShapes().get('NetworkPolicy') ?? true,
  ) as any;
  assert.ok(upToDate(policy, prunedPolicy));
  assert.equal(prunedPolicy.spec.egress[1].to[0].ipBlock.except.length > 0, true);
});
