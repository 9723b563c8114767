import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { CommandIo } from './io.ts';

/**
 * Parses a subcommand's flags (strict: an unknown flag is an error). On bad input it prints the
 * error and the usage, as every subcommand does, and returns undefined: the caller exits 2.
 */
export function parseCommandArgs<T extends ParseArgsConfig>(
  command: string,
  usage: string,
  io: CommandIo,
  config: T,
): ReturnType<typeof parseArgs<T>> | undefined {
  try {
    return parseArgs(config);
  } catch (error) {
    io.stderr(`mcpworks ${command}: ${(error as Error).message}\n\n${usage}`);
    return undefined;
  }
}
