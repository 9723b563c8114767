#!/usr/bin/env node
/**
 * `mcpworks`: one program, one subcommand per workload or tool. Each subcommand lives in
 * ./commands/<name>.ts and exports `run(argv, io)`; it is loaded only when invoked so that
 * `mcpworks policy eval` does not pay for the Kubernetes client.
 */
import type { CommandIo } from './io.ts';
import { processIo } from './io.ts';

type CommandModule = { run(argv: string[], io: CommandIo): Promise<number> };

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  serve: {
    summary: 'run gateway and executor on this machine from manifests (-f <file|dir>...)',
    load: () => import('./commands/serve.ts'),
  },
  controller: {
    summary: 'run the operator (KUBECONFIG or in-cluster config)',
    load: () => import('./commands/controller.ts'),
  },
  gateway: { summary: 'run the gateway workload', load: () => import('./commands/gateway.ts') },
  executor: { summary: 'run the executor workload', load: () => import('./commands/executor.ts') },
  policy: {
    summary: 'policy eval -f <policies> --request <json> | policy test -f <policies> <cases.yaml>',
    load: () => import('./commands/policy.ts'),
  },
  audit: {
    summary:
      'audit verify <log> [--public-key <f>]: check a decision log | audit keygen: a signing key',
    load: () => import('./commands/audit.ts'),
  },
  apikey: {
    summary: 'apikey new <id> --agent <name>: a new API key and its Secret entry',
    load: () => import('./commands/apikey.ts'),
  },
  crds: {
    summary: 'print the CRDs (--write regenerates the files)',
    load: () => import('./commands/crds.ts'),
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(11)} ${c.summary}`);
  return `usage: mcpworks <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[], io: CommandIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.stderr(`mcpworks: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const module = await command.load();
  return module.run(rest, io);
}

const invokedDirectly =
  import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/mcpworks');
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(`mcpworks: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    },
  );
}
