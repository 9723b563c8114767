import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { buildCrds, CrdSchemaError, generatedFiles, structuralSchema } from './crds.ts';
import { ALL_CROSS_FIELD_RULES } from './v1alpha1/index.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const crdByKind = (kind: string) => buildCrds().find((crd) => crd.spec.names.kind === kind);

test('committed CRD files match the generator (run `make crds` after a schema change)', async () => {
  for (const [path, expected] of generatedFiles()) {
    const actual = await readFile(resolve(repoRoot, path), 'utf8').catch(() => '<missing>');
    assert.equal(actual, expected, `${path} is out of date`);
  }
});

test('every cross-field rule appears in a CRD exactly as written', () => {
  const all = JSON.stringify(buildCrds());
  for (const rule of ALL_CROSS_FIELD_RULES) {
    assert.ok(all.includes(JSON.stringify(rule.rule)), `rule ${rule.id} is missing from the CRDs`);
  }
});

test('McpServer: short name, category, status subresource and columns', () => {
  const crd = crdByKind('McpServer');
  assert.deepEqual(crd?.spec.names.shortNames, ['mcps']);
  assert.deepEqual(crd?.spec.names.categories, ['mcpworks']);
  const version = crd?.spec.versions[0];
  assert.deepEqual(version?.subresources, { status: {} });
  const columns = version?.additionalPrinterColumns
    ?.filter((c) => c.priority === undefined)
    .map((c) => c.name);
  assert.deepEqual(columns, ['Ready', 'Tools', 'Endpoint', 'Age']);
});

test('ClusterAgentPolicy is cluster-scoped and AgentPolicy is namespaced', () => {
  assert.equal(crdByKind('ClusterAgentPolicy')?.spec.scope, 'Cluster');
  assert.equal(crdByKind('ClusterAgentPolicy')?.spec.names.shortNames?.[0], 'cap');
  assert.equal(crdByKind('AgentPolicy')?.spec.scope, 'Namespaced');
  assert.equal(crdByKind('AgentPolicy')?.spec.names.shortNames?.[0], 'ap');
});

test('tools are a list-map keyed by name and only inputSchema preserves unknown fields', () => {
  const text = JSON.stringify(crdByKind('McpServer'));
  const spec = JSON.parse(text).spec.versions[0].schema.openAPIV3Schema.properties.spec;
  assert.equal(spec.properties.tools['x-kubernetes-list-type'], 'map');
  assert.deepEqual(spec.properties.tools['x-kubernetes-list-map-keys'], ['name']);
  assert.equal(text.split('x-kubernetes-preserve-unknown-fields').length - 1, 1);
  assert.equal(
    spec.properties.tools.items.properties.inputSchema['x-kubernetes-preserve-unknown-fields'],
    true,
  );
});

test('the generator refuses an unbounded string', () => {
  assert.throws(() => structuralSchema(z.object({ free: z.string() }), 'x'), CrdSchemaError);
});

test('the generator refuses a union it cannot express structurally', () => {
  const schema = z.object({ either: z.union([z.boolean(), z.string().max(3)]) });
  assert.throws(() => structuralSchema(schema, 'x'), /unions other than integer-or-string/);
});

test('the generator refuses a map whose keys only zod would check', () => {
  const schema = z.object({
    m: z.record(z.string().regex(/^a/), z.string().max(3)).meta({ maxProperties: 2 }),
  });
  assert.throws(() => structuralSchema(schema, 'x'), /map keys cannot be constrained/);
});

test('the generator refuses a refinement only zod would enforce', () => {
  const schema = z.object({
    even: z
      .number()
      .int()
      .max(10)
      .refine((n) => n % 2 === 0),
  });
  assert.throws(
    () => structuralSchema(schema, 'x'),
    /x\.even: a zod refinement without a CRD counterpart/,
  );
});

test('integer-or-string unions become x-kubernetes-int-or-string', () => {
  const schema = z.object({ q: z.union([z.number().int(), z.string().max(8)]) });
  const properties = structuralSchema(schema, 'x').properties as Record<
    string,
    Record<string, unknown>
  >;
  assert.equal(properties.q?.['x-kubernetes-int-or-string'], true);
  assert.equal(properties.q?.type, undefined);
});
