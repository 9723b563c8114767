import { z } from 'zod';
import { SubjectKindSchema } from '../../api/v1alpha1/agentpolicy.ts';
import type { PolicyRequest, Principal } from './types.ts';

/**
 * A request as `mcpworks policy eval --request` and `policy test` cases write it: the request as
 * the gateway sees it after authentication.
 *
 * Subject → Principal:
 * - `Agent` {name, groups}: an agent authenticated by API key or OIDC.
 * - `ServiceAccount` {name, namespace, groups}: `name` is the account's name (or the full
 *   `system:serviceaccount:<ns>:<name>`); `namespace` is required unless the full form is used.
 * - `Group` {name, groups}: some agent that belongs to group `name` (plus `groups`); it matches
 *   Group rules and `Agent: "*"`, but no rule naming a particular agent.
 * - `Anonymous`: an unauthenticated caller on a server that allows them; `groups` are ignored.
 */
export const RequestSubjectSchema = z.strictObject({
  kind: SubjectKindSchema,
  name: z.string().min(1).max(253).optional(),
  namespace: z.string().min(1).max(63).optional(),
  groups: z.array(z.string().min(1)).max(64).optional(),
});

export const CliPolicyRequestSchema = z.strictObject({
  /** `namespace/name` of the McpServer. */
  server: z
    .string()
    .regex(
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
      'must be "namespace/name"',
    ),
  /** Labels of the McpServer; default: its manifest's labels when loaded, else none. */
  serverLabels: z.record(z.string(), z.string()).optional(),
  /** Labels of the server's namespace (for ClusterAgentPolicy namespaceSelectors); default: its Namespace manifest's, else none. */
  namespaceLabels: z.record(z.string(), z.string()).optional(),
  subject: RequestSubjectSchema,
  method: z.string().min(1).default('tools/call'),
  tool: z.string().min(1).optional(),
  arguments: z.record(z.string(), z.unknown()).optional(),
  /**
   * tools/call only: a connection the tool would make. The answer then includes the egress
   * guardrails' verdict on the host (ClusterAgentPolicy egressDeny); the tool's own `egress`
   * rules are the executor's to apply.
   */
  egress: z
    .strictObject({
      host: z.string().min(1).max(255),
      port: z.number().int().min(1).max(65_535).default(443),
    })
    .optional(),
});
export type CliPolicyRequest = z.infer<typeof CliPolicyRequestSchema>;

/** Maps a validated CLI request onto the engine's request; returns a field error when it cannot. */
export function toPolicyRequest(
  request: CliPolicyRequest,
  serverLabels: Record<string, string> = {},
  namespaceLabels: Record<string, string> = {},
): { ok: true; request: PolicyRequest } | { ok: false; path: string; message: string } {
  const [namespace = '', name = ''] = request.server.split('/');
  const principal = toPrincipal(request.subject);
  if ('message' in principal)
    return { ok: false, path: `subject.${principal.path}`, message: principal.message };
  return {
    ok: true,
    request: {
      server: {
        namespace,
        name,
        labels: request.serverLabels ?? serverLabels,
        namespaceLabels: request.namespaceLabels ?? namespaceLabels,
      },
      principal,
      method: request.method,
      ...(request.tool === undefined ? {} : { tool: request.tool }),
      ...(request.arguments === undefined ? {} : { arguments: request.arguments }),
    },
  };
}

function toPrincipal(
  subject: z.infer<typeof RequestSubjectSchema>,
): Principal | { path: string; message: string } {
  const groups = subject.groups ?? [];
  switch (subject.kind) {
    case 'Anonymous':
      return { kind: 'Anonymous', name: 'anonymous', groups: [], authMethod: 'anonymous' };
    case 'Agent':
      if (subject.name === undefined) return { path: 'name', message: 'required for an Agent' };
      return { kind: 'Agent', name: subject.name, groups, authMethod: 'api-key' };
    case 'Group':
      if (subject.name === undefined) return { path: 'name', message: 'required for a Group' };
      return {
        kind: 'Agent',
        name: `(a member of group ${subject.name})`,
        groups: [subject.name, ...groups.filter((g) => g !== subject.name)],
        authMethod: 'oidc',
      };
    case 'ServiceAccount': {
      if (subject.name === undefined)
        return { path: 'name', message: 'required for a ServiceAccount' };
      const full = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(subject.name);
      const namespace = full?.[1] ?? subject.namespace;
      const account = full?.[2] ?? subject.name;
      if (namespace === undefined)
        return { path: 'namespace', message: 'required for a ServiceAccount' };
      return {
        kind: 'ServiceAccount',
        name: `system:serviceaccount:${namespace}:${account}`,
        namespace,
        serviceAccountName: account,
        groups,
        authMethod: 'service-account',
      };
    }
  }
}
