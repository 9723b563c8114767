/**
 * `mcpworks audit verify <log>` checks the hash chains of a decision log (JSON lines, as the
 * gateway's pino sink writes them; other log lines are skipped) and names the first record that
 * was deleted, reordered or altered. Exit 0 intact, 1 broken, 2 bad input (unreadable, or no
 * decision records at all).
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ChainVerifier, type ChainReport } from '../../gateway/decisions/verify.ts';
import type { CommandIo } from '../io.ts';

const USAGE = `usage: mcpworks audit verify <log> [--require-start] [--expect-last <writerId>=<seq>]... [--json]

  <log>            a JSON-lines decision log ("-" reads standard input)
  --require-start  every writer's chain must start at seq 0 (a complete, not a rotated, log)
  --expect-last    the last seq a writer is known to have written (e.g. from metrics): finds a truncated tail
  --json           print the report as JSON

exit codes: 0 intact, 1 a record was deleted, reordered, altered or truncated, 2 bad input
`;

export async function run(
  argv: string[],
  io: CommandIo,
  stdin: () => Readable = () => process.stdin,
): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    io.stdout(USAGE);
    return 0;
  }
  if (sub !== 'verify') {
    io.stderr(
      `mcpworks audit: ${sub === undefined ? 'missing subcommand' : `unknown subcommand "${sub}"`}\n\n${USAGE}`,
    );
    return 2;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: {
        'require-start': { type: 'boolean' },
        'expect-last': { type: 'string', multiple: true },
        json: { type: 'boolean' },
      },
    });
  } catch (error) {
    io.stderr(
      `mcpworks audit: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`,
    );
    return 2;
  }
  if (parsed.positionals.length !== 1) {
    io.stderr(`mcpworks audit: verify needs exactly one log file\n\n${USAGE}`);
    return 2;
  }
  const expectLastSeq = new Map<string, number>();
  for (const item of parsed.values['expect-last'] ?? []) {
    const match = /^(.+)=(\d+)$/.exec(item);
    if (match === null) {
      io.stderr(`mcpworks audit: --expect-last takes <writerId>=<seq>, got "${item}"\n`);
      return 2;
    }
    expectLastSeq.set(match[1] as string, Number(match[2]));
  }
  const path = parsed.positionals[0] as string;
  let report: ChainReport;
  try {
    report = await verifyStream(path === '-' ? stdin() : createReadStream(resolve(io.cwd, path)), {
      requireStart: parsed.values['require-start'] === true,
      expectLastSeq,
    });
  } catch (error) {
    io.stderr(
      `mcpworks audit: cannot read ${path}: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return 2;
  }
  if (report.ok && report.records === 0) {
    io.stderr(`mcpworks audit: ${path} holds no decision records (lines with "msg":"decision")\n`);
    return 2;
  }
  if (parsed.values.json === true) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
  else if (report.ok) {
    const writers = report.writers
      .map((w) => `${w.writerId} seq ${w.firstSeq}..${w.lastSeq}`)
      .join(', ');
    io.stdout(
      `intact: ${report.records} records from ${report.writers.length} writer(s) (${writers})\n`,
    );
    for (const note of report.notes) io.stdout(`note: ${note}\n`);
  } else {
    io.stdout(
      `BROKEN (${report.break?.problem}) at line ${report.break?.line}: ${report.break?.message}\n`,
    );
    io.stdout(`${report.records} records verified before it\n`);
  }
  return report.ok ? 0 : 1;
}

/** Streams the log line by line: memory stays proportional to the number of writers. */
async function verifyStream(
  input: Readable,
  options: ConstructorParameters<typeof ChainVerifier>[0],
): Promise<ChainReport> {
  const verifier = new ChainVerifier(options);
  const lines = createInterface({ input, crlfDelay: Infinity });
  for await (const line of lines) verifier.push(line);
  return verifier.finish();
}
