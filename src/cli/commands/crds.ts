import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { crdsYaml, generatedFiles } from '../../api/crds.ts';
import type { CommandIo } from '../io.ts';

const USAGE = `usage: mcpworks crds [--write | --check] [--dir <repository root>]

  (no flag)  print the CustomResourceDefinitions as one multi-document YAML stream
  --write    regenerate crds/*.yaml, config/crd/bases/*.yaml, config/crd/kustomization.yaml and
             charts/mcpworks/crds/*.yaml
  --check    exit 1 when those files differ from what the schemas generate
`;

/** `mcpworks crds`: the CRDs generated from the zod schemas in src/api/v1alpha1. */
export async function run(argv: string[], io: CommandIo): Promise<number> {
  let mode: 'print' | 'write' | 'check' = 'print';
  let root = io.cwd;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--write') mode = 'write';
    else if (arg === '--check') mode = 'check';
    else if (arg === '--dir' && argv[i + 1] !== undefined) root = resolve(io.cwd, argv[++i] ?? '');
    else if (arg === '--help' || arg === '-h') {
      io.stdout(USAGE);
      return 0;
    } else {
      io.stderr(`mcpworks crds: unexpected argument "${arg}"\n${USAGE}`);
      return 2;
    }
  }

  if (mode === 'print') {
    io.stdout(crdsYaml());
    return 0;
  }
  const stale: string[] = [];
  for (const [path, content] of generatedFiles()) {
    const file = resolve(root, path);
    const current = await readFile(file, 'utf8').catch(() => undefined);
    if (current === content) continue;
    stale.push(path);
    if (mode === 'write') {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
      io.stdout(`wrote ${path}\n`);
    }
  }
  if (mode === 'check' && stale.length > 0) {
    io.stderr(`mcpworks crds: out of date (run \`make crds\`): ${stale.join(', ')}\n`);
    return 1;
  }
  return 0;
}
