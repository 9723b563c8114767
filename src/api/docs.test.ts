import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ALL_CROSS_FIELD_RULES, CONTROLLER_ONLY_RULES, LIMIT_BOUNDS } from './v1alpha1/index.ts';

const docPath = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'api.md');

test('docs/api.md lists every validation rule', async () => {
  const doc = await readFile(docPath, 'utf8');
  for (const rule of [...ALL_CROSS_FIELD_RULES, ...CONTROLLER_ONLY_RULES]) {
    assert.ok(doc.includes(`\`${rule.id}\``), `docs/api.md does not mention rule ${rule.id}`);
  }
});

test('docs/api.md states every tool limit as the schema has it', async () => {
  const doc = await readFile(docPath, 'utf8');
  for (const [field, bound] of Object.entries(LIMIT_BOUNDS)) {
    const row = new RegExp(
      `\\| \`${field}\`\\s*\\| ${bound.min}\\s*\\| ${bound.max}\\s*\\| ${bound.default}\\s*\\|`,
    );
    assert.match(doc, row, `docs/api.md: the ${field} row does not match LIMIT_BOUNDS`);
  }
});
