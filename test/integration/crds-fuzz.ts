/** One-field mutations of valid objects, for the zod / API server differential fuzz test. */
import type { Obj } from './crds-cases.ts';

/** Values chosen to sit on and around the schema's bounds and patterns. */
export const MUTATION_VALUES: readonly unknown[] = [
  null,
  true,
  -1,
  0,
  1,
  1.5,
  15,
  16,
  300,
  301,
  4096,
  4097,
  2 ** 31,
  '',
  'a',
  'A b',
  '1x',
  '*',
  'x'.repeat(64),
  'x'.repeat(65),
  'x'.repeat(254),
  'https://issuer.example',
  'http://issuer.example',
  '500m',
  'Allow',
  'Deny',
  'In',
  'Anonymous',
  'ServiceAccount',
  [],
  ['a'],
  {},
  { name: 'x' },
];

export type Path = readonly (string | number)[];

/** Every node of an object as a path (root, apiVersion, kind, metadata and its namespace excluded). */
export function nodePaths(obj: Obj): Path[] {
  const out: Path[] = [];
  const walk = (value: unknown, path: Path) => {
    if (path.length > 0) out.push(path);
    if (Array.isArray(value)) value.forEach((item, i) => walk(item, [...path, i]));
    else if (typeof value === 'object' && value !== null) {
      for (const [key, child] of Object.entries(value)) walk(child, [...path, key]);
    }
  };
  walk(obj, []);
  const skipped = new Set(['apiVersion', 'kind', 'metadata', 'metadata.namespace']);
  return out.filter((p) => !skipped.has(p.join('.')));
}

export const showPath = (path: Path): string =>
  path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');

export type Mutation = { op: 'delete' } | { op: 'unknown-field' } | { op: 'set'; value: unknown };

export function mutate(obj: Obj, path: Path, mutation: Mutation): Obj {
  const copy = structuredClone(obj);
  const key = path[path.length - 1] as string | number;
  let parent = copy as Record<string | number, unknown>;
  for (const segment of path.slice(0, -1))
    parent = parent[segment] as Record<string | number, unknown>;
  if (mutation.op === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  } else if (mutation.op === 'set') {
    parent[key] = structuredClone(mutation.value);
  } else {
    const target = parent[key];
    if (typeof target === 'object' && target !== null && !Array.isArray(target)) {
      (target as Record<string, unknown>).zzUnknown = 1;
    } else {
      parent[key] = { zzUnknown: 1 };
    }
  }
  return copy;
}
