// The platform engineer's material must match the code: every metric the Grafana dashboard
// queries is declared in src/, and every `mcpworks` flag and metric the docs mention exists.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../harness/paths.ts';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => join(e.parentPath, e.name));
}

const source = sourceFiles(join(repoRoot, 'src'))
  .map((f) => readFileSync(f, 'utf8'))
  .join('\n');

/** Metric names declared in src/: literals and `${..._PREFIX}name` templates. */
function declaredMetrics(): Set<string> {
  const names = new Set<string>();
  for (const m of source.matchAll(/name:\s*['"`](mcpworks_[a-z0-9_]+)['"`]/g)) names.add(m[1]!);
  // `${SOME_PREFIX}name` templates, with each *_PREFIX constant that holds a metric prefix.
  for (const [, constant, prefix] of source.matchAll(
    /\b([A-Z_]*PREFIX)\s*=\s*'(mcpworks_[a-z_]*)'/g,
  )) {
    for (const m of source.matchAll(new RegExp(`\\$\\{${constant}\\}([a-z0-9_]+)`, 'g'))) {
      names.add(prefix! + m[1]!);
    }
  }
  return names;
}

/** A series name as queried, reduced to the metric that produces it. */
function baseMetric(series: string, declared: Set<string>): string {
  if (declared.has(series)) return series;
  return series.replace(/_(bucket|sum|count)$/, '');
}

/** The platform guide: README.md and docs/ except the ADRs and the pages other owners keep. */
const OTHER_OWNERS = new Set(['api-keys.md', 'policy.md', 'authentication.md']);
function docFiles(): string[] {
  const docs = readdirSync(join(repoRoot, 'docs'), { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.md') && !OTHER_OWNERS.has(e.name))
    .map((e) => join(e.parentPath, e.name));
  return [join(repoRoot, 'README.md'), ...docs];
}

test('every metric on the Grafana dashboard is declared in the code', () => {
  const declared = declaredMetrics();
  assert.ok(declared.size > 0, 'found no metric declarations in src/');
  const dashboards = readdirSync(join(repoRoot, 'dashboards/grafana')).filter((n) =>
    n.endsWith('.json'),
  );
  assert.ok(dashboards.length > 0);
  for (const name of dashboards) {
    const text = readFileSync(join(repoRoot, 'dashboards/grafana', name), 'utf8');
    JSON.parse(text);
    const used = new Set([...text.matchAll(/\bmcpworks_[a-z0-9_]+/g)].map((m) => m[0]));
    assert.ok(used.size > 0, `${name} queries no mcpworks metric`);
    for (const series of used) {
      assert.ok(declared.has(baseMetric(series, declared)), `${name}: ${series} is not in src/`);
    }
  }
});

test('every metric the docs mention is declared in the code', () => {
  const declared = declaredMetrics();
  for (const file of docFiles()) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\bmcpworks_[a-z0-9_]+/g)) {
      assert.ok(
        declared.has(baseMetric(m[0], declared)),
        `${relative(repoRoot, file)}: ${m[0]} is not declared in src/`,
      );
    }
  }
});
