// Baseline figures for the test infrastructure itself.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { percentile, round, timeRuns } from '../harness/stats.ts';
import type { BenchContext, BenchFigure } from './types.ts';

const run = promisify(execFile);

export default async function bench(ctx: BenchContext): Promise<BenchFigure[]> {
  const bare = await timeRuns(20, () => run('/usr/bin/python3', ['-c', 'pass']));
  ctx.log(`bare python3 spawn p50 ${round(percentile(bare, 50))} ms`);
  return [
    {
      suite: 'baseline',
      name: 'spawn python3 -c pass p50',
      value: round(percentile(bare, 50)),
      unit: 'ms',
    },
  ];
}
