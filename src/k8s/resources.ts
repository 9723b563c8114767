/** Where a kind lives in the API: enough to build every URL the controller and gateway call. */
export interface ResourceType {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

function resource(
  apiVersion: string,
  kind: string,
  plural: string,
  namespaced = true,
): ResourceType {
  return { apiVersion, kind, plural, namespaced };
}

/** Every kind this project reads or writes; RBAC in config/rbac mirrors this list. */
export const Resources = {
  McpServer: resource('mcpworks.io/v1alpha1', 'McpServer', 'mcpservers'),
  AgentPolicy: resource('mcpworks.io/v1alpha1', 'AgentPolicy', 'agentpolicies'),
  ClusterAgentPolicy: resource(
    'mcpworks.io/v1alpha1',
    'ClusterAgentPolicy',
    'clusteragentpolicies',
    false,
  ),
  Namespace: resource('v1', 'Namespace', 'namespaces', false),
  Secret: resource('v1', 'Secret', 'secrets'),
  ConfigMap: resource('v1', 'ConfigMap', 'configmaps'),
  Service: resource('v1', 'Service', 'services'),
  ServiceAccount: resource('v1', 'ServiceAccount', 'serviceaccounts'),
  Event: resource('v1', 'Event', 'events'),
  Deployment: resource('apps/v1', 'Deployment', 'deployments'),
  NetworkPolicy: resource('networking.k8s.io/v1', 'NetworkPolicy', 'networkpolicies'),
  Role: resource('rbac.authorization.k8s.io/v1', 'Role', 'roles'),
  RoleBinding: resource('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings'),
  ClusterRoleBinding: resource(
    'rbac.authorization.k8s.io/v1',
    'ClusterRoleBinding',
    'clusterrolebindings',
    false,
  ),
  Lease: resource('coordination.k8s.io/v1', 'Lease', 'leases'),
} as const satisfies Record<string, ResourceType>;

/** `/api/v1/namespaces/ns/secrets/name` and friends; `name` and `namespace` are URL-encoded. */
export function resourcePath(
  type: ResourceType,
  options: { namespace?: string | undefined; name?: string | undefined; subresource?: string } = {},
): string {
  const base = type.apiVersion.includes('/')
    ? `/apis/${type.apiVersion}`
    : `/api/${type.apiVersion}`;
  let path = base;
  if (type.namespaced && options.namespace !== undefined) {
    path += `/namespaces/${encodeURIComponent(options.namespace)}`;
  }
  path += `/${type.plural}`;
  if (options.name !== undefined) path += `/${encodeURIComponent(options.name)}`;
  if (options.subresource !== undefined) path += `/${options.subresource}`;
  return path;
}
