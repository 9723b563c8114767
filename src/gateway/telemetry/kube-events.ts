/**
 * The Kubernetes EventPublisher: core/v1 Events (what `kubectl describe` and `kubectl get events`
 * show) on the McpServer or policy object, written with the gateway's own identity. The write
 * goes through a one-function port so the gateway can use the project's thin client
 * (src/k8s/client.ts) and tests can use any other.
 */
import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { KubeClient } from '../../k8s/client.ts';
import { Resources } from '../../k8s/resources.ts';
import type { AggregatedEvent, EventPublisher } from './events.ts';

/** Creates one Event object in `namespace`. */
export type CreateEvent = (namespace: string, body: CoreV1Event) => Promise<unknown>;

export interface KubeEventPublisherOptions {
  createEvent: CreateEvent;
  /** `reportingInstance`: the pod name. */
  instance: string;
  component?: string;
}

/** Events of cluster-scoped objects live in `default`, as the API server's own do. */
const CLUSTER_SCOPED_EVENT_NAMESPACE = 'default';

export function kubeEventBody(
  event: AggregatedEvent,
  options: { instance: string; component: string },
): CoreV1Event {
  const namespace = event.regarding.namespace ?? CLUSTER_SCOPED_EVENT_NAMESPACE;
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: {
      name: `${event.regarding.name}.${randomBytes(8).toString('hex')}`.slice(0, 253),
      namespace,
    },
    involvedObject: {
      apiVersion: event.regarding.apiVersion,
      kind: event.regarding.kind,
      name: event.regarding.name,
      ...(event.regarding.namespace === undefined ? {} : { namespace: event.regarding.namespace }),
      ...(event.regarding.uid === undefined ? {} : { uid: event.regarding.uid }),
    },
    type: event.type,
    reason: event.reason,
    message: event.message.slice(0, 1024),
    count: event.count,
    firstTimestamp: event.firstTimestamp,
    lastTimestamp: event.lastTimestamp,
    source: { component: options.component },
    reportingComponent: options.component,
    reportingInstance: options.instance,
    action: event.type === 'Warning' ? 'Denied' : 'Observed',
  };
}

export function createKubeEventPublisher(options: KubeEventPublisherOptions): EventPublisher {
  const component = options.component ?? 'mcpworks-gateway';
  return {
    async publish(event) {
      const body = kubeEventBody(event, { instance: options.instance, component });
      await options.createEvent(body.metadata?.namespace ?? CLUSTER_SCOPED_EVENT_NAMESPACE, body);
    },
  };
}

/** The port over the project's Kubernetes client (what `mcpworks gateway` uses). */
export function createEventWith(client: Pick<KubeClient, 'create'>): CreateEvent {
  return (_namespace, body) =>
    client.create(
      Resources.Event,
      JSON.parse(JSON.stringify(body)) as Parameters<KubeClient['create']>[1],
    );
}
