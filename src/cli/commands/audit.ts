/**
 * `mcpworks audit verify <log>` checks the hash chains of a decision log (JSON lines, as the
 * gateway's pino sink writes them; other log lines are skipped) and names the first record that
 * was deleted, reordered or altered; with `--public-key`, also that every record is signed by
 * one of the given writer keys. Exit 0 intact, 1 broken, 2 bad input (unreadable, or no
 * decision records at all).
 *
 * `mcpworks audit keygen` makes a writer signing key: the private key as a Kubernetes Secret
 * manifest (for spec.audit.signingKeySecretRef or `serve --audit-signing-key`), the public key
 * for `verify --public-key`.
 */
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { DNS_LABEL_PATTERN, DnsSubdomainSchema } from '../../api/v1alpha1/common.ts';
import { AUDIT_SIGNING_KEY_DEFAULT_KEY } from '../../api/v1alpha1/mcpserver.ts';
import {
  generateSigningKey,
  keyIdOf,
  parsePublicKeys,
  parseSigningKey,
} from '../../gateway/decisions/signing.ts';
import { ChainVerifier, type ChainReport } from '../../gateway/decisions/verify.ts';
import { parseCommandArgs } from '../args.ts';
import type { CommandIo } from '../io.ts';

const USAGE = `usage: mcpworks audit verify <log> [--public-key <file>]... [--require-start] [--expect-last <writerId>=<seq>]... [--json]
       mcpworks audit keygen --name <secret> [--namespace <ns>] [--secret-file <file>] [--public-key-file <file>]

verify: checks the hash chain of each writer in a decision log and names the first record that
was deleted, reordered, altered or truncated.
  <log>              a JSON-lines decision log ("-" reads standard input)
  --public-key <f>   Ed25519 public key(s), PEM ("-----BEGIN PUBLIC KEY-----"; a file may hold
                     several, e.g. the current and the previous key); repeatable. Every record
                     must then be signed by one of them: proves the records were written by a
                     holder of a signing key, not fabricated by someone who could only write
                     the log. Without it, writer identity is not checked (the report says so).
  --require-start    every writer's chain must start at seq 0 (a complete, not a rotated, log)
  --expect-last      the last seq a writer is known to have written (e.g. from metrics): finds a truncated tail
  --json             print the report as JSON
  Not provable from the log alone: a truncated tail (without --expect-last), a writer whose
  whole log was deleted, records signed with a stolen key.

keygen: a new Ed25519 signing key for the decision log.
  --name <secret>          name of the Secret (spec.audit.signingKeySecretRef.name)
  --namespace <ns>         namespace of the Secret (that of the McpServer); omitted: none in the manifest
  --secret-file <file>     write the Secret manifest (YAML, key ${AUDIT_SIGNING_KEY_DEFAULT_KEY}: PEM PKCS#8) here, mode 0600; default stdout
  --public-key-file <file> write the public key (PEM, for verify --public-key) here; default stdout
  One of the two files is needed: the Secret and the public key never go to the same place.
  Existing files are not overwritten.

exit codes: 0 intact (keygen: written), 1 a record was deleted, reordered, altered, truncated,
unsigned or signed by an unknown key or with a bad signature, 2 bad input
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
  if (sub === 'keygen') return keygen(rest, io);
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
        'public-key': { type: 'string', multiple: true },
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
  let publicKeys: KeyObject[] | undefined;
  for (const file of parsed.values['public-key'] ?? []) {
    try {
      const keys = parsePublicKeys(await readFile(resolve(io.cwd, file), 'utf8'));
      publicKeys = [...(publicKeys ?? []), ...keys];
    } catch (error) {
      io.stderr(`mcpworks audit: --public-key ${file}: ${(error as Error).message}\n`);
      return 2;
    }
  }
  const path = parsed.positionals[0] as string;
  let report: ChainReport;
  try {
    report = await verifyStream(path === '-' ? stdin() : createReadStream(resolve(io.cwd, path)), {
      requireStart: parsed.values['require-start'] === true,
      expectLastSeq,
      ...(publicKeys === undefined ? {} : { publicKeys }),
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
    if (report.identity.checked)
      io.stdout(`signed: every record, by key(s) ${report.identity.keyIds.join(', ')}\n`);
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

/** The annotation naming the keyId on a Secret keygen writes (what records signed with it carry). */
export const KEY_ID_ANNOTATION = 'mcpworks.io/audit-key-id';

async function keygen(argv: string[], io: CommandIo): Promise<number> {
  const parsed = parseCommandArgs('audit', USAGE, io, {
    args: argv,
    options: {
      name: { type: 'string' },
      namespace: { type: 'string' },
      'secret-file': { type: 'string' },
      'public-key-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (parsed === undefined) return 2;
  const { values } = parsed;
  if (values.help === true) {
    io.stdout(USAGE);
    return 0;
  }
  const problems: string[] = [];
  if (values.name === undefined) problems.push('--name <secret> is required');
  else if (!DnsSubdomainSchema.safeParse(values.name).success)
    problems.push(`--name "${values.name}" must be a lowercase RFC 1123 subdomain`);
  if (values.namespace !== undefined && !new RegExp(DNS_LABEL_PATTERN).test(values.namespace))
    problems.push(`--namespace "${values.namespace}" must be a lowercase RFC 1123 label`);
  const secretFile = values['secret-file'];
  const publicKeyFile = values['public-key-file'];
  if (secretFile === undefined && publicKeyFile === undefined)
    problems.push(
      'give --secret-file or --public-key-file (or both): the Secret and the public key are not written to the same place',
    );
  if (secretFile !== undefined && secretFile === publicKeyFile)
    problems.push('--secret-file and --public-key-file must differ');
  if (problems.length > 0) {
    io.stderr(`mcpworks audit keygen: ${problems.join('; ')}\n\n${USAGE}`);
    return 2;
  }

  const key = generateSigningKey();
  // Prove the key is one the gateway will load before handing it out.
  if (keyIdOf(parseSigningKey(key.privateKeyPem)) !== key.keyId) {
    io.stderr('mcpworks audit keygen: internal error: the generated key does not load\n');
    return 1;
  }
  const secret = signingKeySecret(
    values.name as string,
    values.namespace,
    key.keyId,
    key.privateKeyPem,
  );
  // The public key first: if the Secret cannot be written, no key exists that was never saved.
  const outputs: [string | undefined, string, number][] = [
    [publicKeyFile, key.publicKeyPem, 0o644],
    [secretFile, secret, 0o600],
  ];
  for (const [file, text, mode] of outputs) {
    if (file === undefined) {
      io.stdout(text);
      continue;
    }
    try {
      await writeFile(resolve(io.cwd, file), text, { mode, flag: 'wx' });
    } catch (error) {
      io.stderr(`mcpworks audit keygen: cannot write ${file}: ${(error as Error).message}\n`);
      return 1;
    }
  }
  io.stderr(
    `mcpworks audit keygen: key ${key.keyId}: apply the Secret (kubectl apply -f), set ` +
      `spec.audit.signingKeySecretRef.name: ${values.name}, and keep the public key for ` +
      '`mcpworks audit verify --public-key`\n',
  );
  return 0;
}

/** The Secret manifest holding a signing key, as `kubectl apply` takes it. */
export function signingKeySecret(
  name: string,
  namespace: string | undefined,
  keyId: string,
  privateKeyPem: string,
): string {
  const manifest = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      annotations: { [KEY_ID_ANNOTATION]: keyId },
    },
    type: 'Opaque',
    data: {
      [AUDIT_SIGNING_KEY_DEFAULT_KEY]: Buffer.from(privateKeyPem, 'utf8').toString('base64'),
    },
  };
  return (
    `# Ed25519 signing key ${keyId} of the MCPWorks decision log (spec.audit.signingKeySecretRef).\n` +
    stringify(manifest)
  );
}
