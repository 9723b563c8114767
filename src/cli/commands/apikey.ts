// `mcpworks apikey new <id> --agent <name> [--group <g>]... [--expires <RFC 3339>] [--json]`
// Generates a key (256 random bits), prints it once, and prints the Secret entry that holds only
// its scrypt hash and its 16-bit tag (docs/api-keys.md).
import {
  API_KEY_ID_PATTERN,
  ApiKeyEntrySchema,
  ApiKeyStore,
  apiKeyCredentialFields,
  generateApiKey,
} from '../../gateway/auth/apikeys.ts';
import { parseCommandArgs } from '../args.ts';
import type { CommandIo } from '../io.ts';

const USAGE = `usage: mcpworks apikey new <id> --agent <name> [--group <group>]... [--expires <RFC 3339>] [--json]

Prints a new API key (shown once) and the Secret data entry that stores its scrypt hash and
tag (the tag lets the gateway refuse wrong secrets without scrypt).
<id> is the Secret data key: lowercase letters, digits and inner dashes.
`;

export async function run(argv: string[], io: CommandIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  if (sub !== 'new') {
    io.stderr(USAGE);
    return 2;
  }
  const parsed = parseCommandArgs('apikey', USAGE, io, {
    args: rest,
    allowPositionals: true,
    options: {
      agent: { type: 'string' },
      group: { type: 'string', multiple: true },
      expires: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (parsed === undefined) return 2;
  const { values, positionals } = parsed;
  const id = positionals[0];
  if (positionals.length !== 1 || id === undefined || !API_KEY_ID_PATTERN.test(id)) {
    io.stderr(`mcpworks apikey: give exactly one key id matching ${API_KEY_ID_PATTERN.source}\n`);
    return 2;
  }
  const candidate = {
    hash: 'scrypt$placeholder',
    agent: values.agent,
    groups: values.group ?? [],
    ...(values.expires === undefined ? {} : { expires: values.expires }),
  };
  const check = ApiKeyEntrySchema.safeParse(candidate);
  if (!check.success) {
    const problems = check.error.issues.map((i) => `--${String(i.path[0])}: ${i.message}`);
    io.stderr(`mcpworks apikey: ${problems.join('; ')}\n`);
    return 2;
  }

  const key = generateApiKey(id);
  const { hash: _placeholder, ...fields } = candidate;
  const entry = JSON.stringify({ ...(await apiKeyCredentialFields(key)), ...fields });
  // Prove the entry is one the gateway will load before handing it out.
  const loaded = new ApiKeyStore().replace({ [id]: entry });
  if (loaded.loaded !== 1) {
    io.stderr(
      `mcpworks apikey: internal error: ${loaded.rejected[0]?.problem ?? 'entry rejected'}\n`,
    );
    return 1;
  }
  if (values.json) {
    io.stdout(`${JSON.stringify({ id, key, entry })}\n`);
    return 0;
  }
  io.stdout(
    `API key (shown once; give it to the agent as "Authorization: Bearer <key>"):\n  ${key}\n\n` +
      `Secret entry (add under stringData of the Secret named in spec.auth.apiKeys.secretRef):\n` +
      `  ${id}: '${entry}'\n`,
  );
  return 0;
}
