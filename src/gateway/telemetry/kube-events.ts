/**
 * The Kubernetes EventPublisher: core/v1 Events (what `kubectl describe` and `kubectl get events`
 * show) on the McpServer or policy object, written by the gateway's ServiceAccount.
 */
import { randomBytes } from 'node:crypto';
import type { CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import type { AggregatedEvent, EventPublisher } from './events.ts';

export interface KubeEventPublisherOptions {
  core: Pick<CoreV1Api, 'createNamespacedEvent'>;
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
      await options.core.createNamespacedEvent({
        namespace: body.metadata?.namespace ?? 'default',
        body,
      });
    },
  };
}
