/**
 * Where a gateway gets its configuration. Two implementations: the static one built from
 * manifests (`mcpworks serve`, ./static.ts) and the Kubernetes one (`mcpworks gateway`, written by
 * the controller side) that watches the McpServer, its policies, its API-key Secret and its
 * namespace. The gateway reads `current()` once at the start of every request and uses that one
 * snapshot for the whole request, so a policy edit or a key revocation applies to the next
 * request without a restart and never half-way through one.
 */
import type { McpServer } from '../../api/v1alpha1/mcpserver.ts';
import type { ResolvedTool } from '../../executor/types.ts';
import type { CompiledPolicySet } from '../policy/engine.ts';

export interface GatewaySnapshot {
  /**
   * Increases with every change the source publishes; the gateway caches what it derives from a
   * snapshot (authenticator, tool index) per revision. Never reused within one process.
   */
  revision: number;
  /** The McpServer as validated and defaulted by the API schemas. */
  server: McpServer;
  /** `server.spec.tools` in the same order, with `codeFrom` already resolved to `code`. */
  tools: readonly ResolvedTool[];
  /**
   * The AgentPolicies and ClusterAgentPolicies that select this server, compiled
   * (compilePolicySet); an empty set denies everything (default deny).
   */
  policySet: CompiledPolicySet;
  /**
   * The data of the Secret named by `spec.auth.apiKeys.secretRef`, values decoded to UTF-8
   * strings (what `stringData` would hold). Undefined when API keys are not configured, or when
   * the Secret is missing: then every API key is rejected (fail closed).
   */
  apiKeySecretData?: Readonly<Record<string, string>>;
  /** Labels of the server's namespace, for ClusterAgentPolicy namespaceSelectors. */
  namespaceLabels: Readonly<Record<string, string>>;
}

/** `namespace/name` of the snapshot's McpServer: its route, metric label and decision-record key. */
export function serverKeyOf(snapshot: GatewaySnapshot): string {
  const meta = snapshot.server.metadata;
  return `${meta.namespace ?? 'default'}/${meta.name}`;
}

export interface GatewayConfigSource {
  /** The latest snapshot; cheap (no I/O), called once per request. */
  current(): GatewaySnapshot;
  /**
   * Calls `listener` after every new snapshot (not for the one current at subscription time).
   * Returns the unsubscribe function. Listeners must not throw.
   */
  onChange(listener: (snapshot: GatewaySnapshot) => void): () => void;
}
