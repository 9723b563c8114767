// Runs every test/bench/*.bench.ts (or those whose file name contains argv[2]) one after another,
// prints one table and writes all figures to .bench/latest.json. A failing or timed-out benchmark
// prints its error and makes the run exit non-zero; the others still run.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { controlPlaneBinDir, repoRoot, resolveNsjail } from '../harness/paths.ts';
import type { Bench, BenchContext, BenchFigure } from './types.ts';

const benchDir = dirname(fileURLToPath(import.meta.url));

function formatNumber(n: number | undefined): string {
  if (n === undefined) return '';
  if (Number.isInteger(n)) return String(n);
  return Math.abs(n) >= 100 ? n.toFixed(0) : n.toPrecision(3);
}

export function renderTable(figures: readonly BenchFigure[]): string {
  const header = ['suite', 'name', 'value', 'unit', 'baseline', 'ratio', 'goal', 'met'];
  const rows = figures.map((f) => [
    f.suite,
    f.name,
    formatNumber(f.value),
    f.unit,
    f.baseline ? `${f.baseline.name} = ${formatNumber(f.baseline.value)}` : '',
    f.ratio === undefined ? '' : `${formatNumber(f.ratio)}x`,
    f.goal ?? '',
    f.met === undefined ? '' : f.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const missed = figures
    .filter((f) => f.met === false && f.whenNotMet !== undefined)
    .map((f) => `NO: ${f.suite} / ${f.name}\n    why: ${f.whenNotMet}`);
  return [
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    ...(missed.length > 0 ? ['', 'Goals not met, with the measured reason:', ...missed] : []),
  ].join('\n');
}

function checkFigures(file: string, value: unknown): BenchFigure[] {
  if (!Array.isArray(value)) throw new Error(`${file}: bench() must return an array of figures`);
  for (const f of value as BenchFigure[]) {
    if (typeof f?.suite !== 'string' || typeof f.name !== 'string' || typeof f.unit !== 'string') {
      throw new Error(`${file}: a figure lacks suite, name or unit: ${JSON.stringify(f)}`);
    }
    if (typeof f.value !== 'number' || !Number.isFinite(f.value)) {
      throw new Error(`${file}: figure ${f.suite}/${f.name} has no finite value`);
    }
  }
  return value as BenchFigure[];
}

/** Per-file limit, so one hung benchmark cannot stall `make bench` (MCPWORKS_BENCH_TIMEOUT_S). */
const timeoutMs = Number(process.env.MCPWORKS_BENCH_TIMEOUT_S || 900) * 1000;

async function withTimeout<T>(file: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${file} did not finish within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function main(argv: string[]): Promise<number> {
  const filter = argv[0];
  const files = readdirSync(benchDir)
    .filter((f) => f.endsWith('.bench.ts'))
    .filter((f) => !filter || f.includes(filter))
    .sort();
  if (files.length === 0) {
    console.error(`bench: no test/bench/*.bench.ts matches ${JSON.stringify(filter ?? '')}`);
    return 1;
  }

  let nsjailPath: string | undefined;
  try {
    nsjailPath = resolveNsjail();
  } catch (err) {
    console.error(`bench: nsjail unavailable: ${(err as Error).message}`);
  }

  const figures: BenchFigure[] = [];
  const failures: { file: string; error: string }[] = [];
  for (const file of files) {
    const ctx: BenchContext = {
      log: (msg) => console.error(`[${file}] ${msg}`),
      nsjailPath,
      controlPlaneBin: controlPlaneBinDir(),
    };
    console.error(`bench: running ${file}`);
    try {
      const mod = (await import(pathToFileURL(join(benchDir, file)).href)) as { default?: Bench };
      if (typeof mod.default !== 'function') throw new Error('no default-exported bench function');
      figures.push(...checkFigures(file, await withTimeout(file, mod.default(ctx))));
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`bench: ${file} FAILED\n${error}`);
      failures.push({ file, error });
    }
  }

  console.log(renderTable(figures));
  const outDir = join(repoRoot, '.bench');
  mkdirSync(outDir, { recursive: true });
  const report = {
    date: new Date().toISOString(),
    node: process.version,
    filter: filter ?? null,
    files,
    figures,
    failures,
  };
  writeFileSync(join(outDir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  console.error(`bench: ${figures.length} figures written to .bench/latest.json`);
  if (failures.length > 0) {
    console.error(`bench: ${failures.length} failed: ${failures.map((f) => f.file).join(', ')}`);
    return 1;
  }
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  // Exit explicitly: a timed-out benchmark may still hold handles open (the harness's exit
  // hooks stop any control plane it left running).
  process.exit(await main(process.argv.slice(2)));
}
