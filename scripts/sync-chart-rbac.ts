// Copies the RBAC rules of config/rbac (the controller's source of truth) into the Helm chart's
// charts/mcpworks/rbac/*.yaml, which the chart's templates include. Run it after changing
// config/rbac; test/integration/chart.test.ts fails while the two differ.
//
//   node scripts/sync-chart-rbac.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const HEADER =
  "# Copied from config/rbac (the controller's source of truth); test/integration/chart.test.ts\n" +
  '# fails when the two differ. Regenerate: node scripts/sync-chart-rbac.ts\n';

type Role = { kind: string; metadata: { name: string }; rules: unknown[] };

function roles(file: string): Role[] {
  return parseAllDocuments(readFileSync(join(root, 'config/rbac', file), 'utf8'))
    .map((d) => d.toJS() as Role | null)
    .filter((r): r is Role => r !== null && (r.kind === 'ClusterRole' || r.kind === 'Role'));
}

function find(list: Role[], kind: string, name: string): Role {
  const role = list.find((r) => r.kind === kind && r.metadata.name === name);
  if (!role) throw new Error(`config/rbac has no ${kind} ${name}`);
  return role;
}

const targets: [string, Role][] = [
  ['controller-rules.yaml', find(roles('role.yaml'), 'ClusterRole', 'mcpworks-controller')],
  ['gateway-rules.yaml', find(roles('role.yaml'), 'ClusterRole', 'mcpworks-gateway')],
  [
    'leader-election-rules.yaml',
    find(roles('leader_election_role.yaml'), 'Role', 'mcpworks-leader-election'),
  ],
];
for (const [file, role] of targets) {
  // One line per field, lists in flow style, as a person would write a rule.
  const body = (role.rules as Record<string, unknown>[])
    .map((rule) =>
      ['apiGroups', 'resources', 'resourceNames', 'nonResourceURLs', 'verbs']
        .filter((key) => rule[key] !== undefined)
        .map(
          (key, i) =>
            `${i === 0 ? '-' : ' '} ${key}: ${stringify(rule[key], { collectionStyle: 'flow' }).trim()}`,
        )
        .join('\n'),
    )
    .join('\n');
  writeFileSync(join(root, 'charts/mcpworks/rbac', file), `${HEADER}${body}\n`);
  console.log(
    `charts/mcpworks/rbac/${file}: ${role.rules.length} rules from ${role.kind} ${role.metadata.name}`,
  );
}
