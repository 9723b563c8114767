// The platform engineer's material must match the code: every metric the Grafana dashboard
// queries is declared in src/, and every `mcpworks` flag and metric the docs mention exists.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { main } from '../../src/cli/main.ts';
import { helmTemplate, parseObjects } from './chart-support.ts';
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
    // Metric names, not file names such as config/samples/mcpworks_v1alpha1_*.yaml.
    for (const m of text.matchAll(/(?<![\w/.-])mcpworks_[a-z0-9_]+(?![\w.])/g)) {
      assert.ok(
        declared.has(baseMetric(m[0], declared)),
        `${relative(repoRoot, file)}: ${m[0]} is not declared in src/`,
      );
    }
  }
});

/** `usage` text of `mcpworks <command> --help` (and of `<command> <sub> --help`). */
async function helpOf(args: string[]): Promise<string> {
  let out = '';
  const io = {
    stdout: (t: string) => (out += t),
    stderr: (t: string) => (out += t),
    env: {},
    cwd: repoRoot,
  };
  await main([...args, '--help'], io);
  return out;
}

/** `mcpworks …` commands of the guide: shell lines in fenced code, and inline code spans. */
function mcpworksCommands(): { file: string; words: string[] }[] {
  const out: { file: string; words: string[] }[] = [];
  for (const file of docFiles()) {
    const text = readFileSync(file, 'utf8');
    for (const block of text.matchAll(/```([a-z]*)\n([\s\S]*?)```/g)) {
      if (!['', 'sh', 'bash'].includes(block[1]!)) continue;
      for (const line of block[2]!.split('\n')) {
        const m = /(?:^|[;&|(]\s*)mcpworks ([a-z].*)$/.exec(line.trim());
        if (m) out.push({ file: relative(repoRoot, file), words: m[1]!.split(/\s+/) });
      }
    }
    for (const m of text.matchAll(/`mcpworks ([a-z][^`]*)`/g)) {
      out.push({ file: relative(repoRoot, file), words: m[1]!.split(/\s+/) });
    }
  }
  return out;
}

test('every `mcpworks` command and flag the guide shows exists', async () => {
  const commands = mcpworksCommands();
  assert.ok(commands.length >= 5, `found only ${commands.length} mcpworks commands in the docs`);
  for (const { file, words } of commands) {
    const [command, sub] = words;
    // `mcpworks controller: …` is a quoted error message, not a command line.
    if (!/^[a-z]+$/.test(command!)) continue;
    const usage = await helpOf([command!]);
    assert.match(usage, /usage:/, `${file}: mcpworks ${command} has no usage`);
    if (sub && /^[a-z]+$/.test(sub) && !['on'].includes(sub)) {
      assert.ok(
        usage.includes(`${command} ${sub}`),
        `${file}: mcpworks ${command} ${sub} is not a command`,
      );
    }
    for (const flag of words.filter((w) => /^--[a-z-]+/.test(w))) {
      const name = /^--[a-z-]+/.exec(flag)![0];
      assert.ok(usage.includes(name), `${file}: mcpworks ${command} has no ${name}`);
    }
  }
});

test('every chart value the guide sets with --set exists in values.yaml', () => {
  const values = parse(
    readFileSync(join(repoRoot, 'charts/mcpworks/values.yaml'), 'utf8'),
  ) as Record<string, unknown>;
  for (const file of docFiles()) {
    const text = readFileSync(file, 'utf8');
    // Lines starting with `$ ` show a command and the error it gets: skip those on purpose.
    const shown = text
      .split('\n')
      .filter((l) => !l.startsWith('$ '))
      .join('\n');
    for (const m of shown.matchAll(/--set ([A-Za-z.]+)=/g)) {
      let node: unknown = values;
      for (const key of m[1]!.split('.'))
        node = (node as Record<string, unknown> | undefined)?.[key];
      assert.notEqual(
        node,
        undefined,
        `${relative(repoRoot, file)}: --set ${m[1]} is not a chart value`,
      );
    }
  }
});

test('every flag the chart passes to `mcpworks controller` exists', async () => {
  const usage = await helpOf(['controller']);
  const deployment = parseObjects(await helmTemplate({ namespace: 'x' })).find(
    (o) => o.kind === 'Deployment',
  ) as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
  const [command, ...flags] = deployment.spec.template.spec.containers[0]!.args;
  assert.equal(command, 'controller');
  for (const flag of flags) {
    const name = /^--[a-z-]+/.exec(flag)?.[0];
    assert.ok(name && usage.includes(name), `mcpworks controller has no ${flag}`);
  }
});
