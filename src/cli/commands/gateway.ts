import type { CommandIo } from '../io.ts';

// Placeholder until the subcommand lands; it says so and fails.
export async function run(_argv: string[], io: CommandIo): Promise<number> {
  io.stderr('mcpworks gateway: not implemented yet\n');
  return 2;
}
