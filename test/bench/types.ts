// The contract between test/bench/run.ts and every test/bench/*.bench.ts.

/** One measured number, optionally compared with a baseline measured in the same run. */
export interface BenchFigure {
  suite: string;
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** value / baseline.value */
  ratio?: number;
  /** A human statement of the target, e.g. "< 2 s"; never asserted in tests. */
  goal?: string;
  met?: boolean;
  /** When the goal is not met: the measured reason and what it would take (printed then). */
  whenNotMet?: string;
}

export interface BenchContext {
  log(msg: string): void;
  /** The nsjail binary, or undefined when it could not be found or installed. */
  nsjailPath: string | undefined;
  /** Directory holding kube-apiserver, etcd, kube-controller-manager, kubectl, helm. */
  controlPlaneBin: string;
}

/** What a `*.bench.ts` file default-exports. */
export type Bench = (ctx: BenchContext) => Promise<BenchFigure[]>;
