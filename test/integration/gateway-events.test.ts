// The Kubernetes Events sink against a real kube-apiserver: a burst of denials becomes one
// aggregated core/v1 Event on the McpServer, and a flood stays within the rate limit.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { manualClock } from '../../src/shared/clock.ts';
import {
  createEventAggregator,
  type EventObservation,
} from '../../src/gateway/telemetry/events.ts';
import {
  createEventWith,
  createKubeEventPublisher,
} from '../../src/gateway/telemetry/kube-events.ts';
import { createKubeClient } from '../../src/k8s/client.ts';
import { startControlPlane, type ControlPlane } from '../harness/controlplane.ts';

let cp: ControlPlane;
let core: CoreV1Api;
before(async () => {
  cp = await startControlPlane();
  core = cp.kubeConfig.makeApiClient(CoreV1Api);
});
after(() => cp?.stop());

/** The gateway's Event publisher (instance gw-0), talking to the API server as `kubeConfig`. */
function publisherAs(kubeConfig: KubeConfig) {
  return createKubeEventPublisher({
    createEvent: createEventWith(createKubeClient(kubeConfig)),
    instance: 'gw-0',
  });
}

function denial(
  namespace: string,
  name: string,
  message = 'agent-x was denied tool rm',
): EventObservation {
  return {
    regarding: {
      apiVersion: 'mcpworks.io/v1alpha1',
      kind: 'McpServer',
      namespace,
      name,
      uid: 'uid-123',
    },
    type: 'Warning',
    reason: 'ToolCallDenied',
    message,
  };
}

test('a burst of denials is one Event on the McpServer with the count', async () => {
  const ns = await cp.newNamespace('events');
  const clock = manualClock();
  const sink = createEventAggregator({
    publisher: publisherAs(cp.kubeConfig),
    clock,
    windowMs: 30_000,
  });
  for (let i = 0; i < 250; i++) sink.observe(denial(ns, 'demo'));
  clock.advance(30_000);
  await sink.flush();
  const events = (await core.listNamespacedEvent({ namespace: ns })).items;
  assert.equal(events.length, 1);
  const [event] = events;
  assert.equal(event!.count, 250);
  assert.equal(event!.type, 'Warning');
  assert.equal(event!.reason, 'ToolCallDenied');
  assert.deepEqual(
    {
      kind: event!.involvedObject.kind,
      name: event!.involvedObject.name,
      uid: event!.involvedObject.uid,
    },
    { kind: 'McpServer', name: 'demo', uid: 'uid-123' },
  );
  assert.equal(event!.reportingComponent, 'mcpworks-gateway');
});

test('a flood across many objects is capped by the token bucket', async () => {
  const ns = await cp.newNamespace('flood');
  const clock = manualClock();
  const sink = createEventAggregator({
    publisher: publisherAs(cp.kubeConfig),
    clock,
    windowMs: 1_000,
    burst: 5,
    perMinute: 5,
  });
  for (let i = 0; i < 40; i++) sink.observe(denial(ns, `server-${i}`));
  clock.advance(1_000);
  await sink.flush();
  const events = (await core.listNamespacedEvent({ namespace: ns })).items;
  assert.equal(events.length, 5);
  assert.equal(sink.stats().dropped, 35);
});

test('a publisher without RBAC for events fails closed: the Event is dropped, the sink keeps working', async () => {
  const ns = await cp.newNamespace('norbac');
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'gw' } } });
  const token = await core.createNamespacedServiceAccountToken({
    name: 'gw',
    namespace: ns,
    body: { spec: { audiences: [] } },
  });
  const weakConfig = cp.kubeconfigFor({ token: token.status?.token ?? '' });
  const clock = manualClock();
  const sink = createEventAggregator({
    publisher: publisherAs(weakConfig),
    clock,
    windowMs: 1,
  });
  sink.observe(denial(ns, 'demo'));
  clock.advance(1);
  await sink.flush();
  assert.deepEqual(sink.stats(), { published: 0, dropped: 1, pending: 0 });
  assert.equal((await core.listNamespacedEvent({ namespace: ns })).items.length, 0);
});
