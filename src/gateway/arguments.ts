/**
 * Checks a tool call's arguments against the tool's declared `inputSchema` before anything runs,
 * so a call the schema refuses costs no sandbox. Validation runs after authorization (a denied
 * caller learns nothing about the tool, its schema included).
 *
 * Schemas are compiled once per configuration: `compileToolValidators` (pure) turns a snapshot's
 * tools into validators; `createArgumentValidators` keeps one set per snapshot revision and reuses
 * it while the schemas are unchanged (a key rotation publishes a new revision, not new schemas).
 *
 * Compilation is deliberately narrow: JSON Schema 2020-12 (MCP's default dialect) or draft-07 when
 * the schema says so; no other `$schema`; strict about unknown keywords (a misspelt `requried`
 * would otherwise constrain nothing; `x-` vendor keywords are annotations); no `$data`; no remote `$ref` (compilation is synchronous
 * and nothing is ever loaded, so an unresolved reference fails); the first error stops
 * validation. `format` is an annotation, as 2020-12 specifies by default: not enforced. A schema
 * that does not compile refuses every call to its tool (fail closed) and is logged once per
 * configuration.
 */
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ResolvedTool } from '../executor/types.ts';
import type { Logger } from '../shared/logger.ts';
import type { GatewaySnapshot } from './source/types.ts';

export type ArgumentCheck =
  | { ok: true }
  /** The caller's arguments do not match the schema; `message` names the failing path. */
  | { ok: false; reason: 'invalid-arguments'; message: string }
  /** The tool's own schema does not compile: a configuration problem, not the caller's. */
  | { ok: false; reason: 'schema-invalid'; message: string };

type ToolValidator =
  | { ok: true; schemaKey: string; validate: ValidateFunction }
  | { ok: false; schemaKey: string; error: string };

export type ToolValidators = ReadonlyMap<string, ToolValidator>;

const DRAFT_07 = new Set([
  'http://json-schema.org/draft-07/schema',
  'http://json-schema.org/draft-07/schema#',
]);
const DRAFT_2020_12 = new Set([
  'https://json-schema.org/draft/2020-12/schema',
  'https://json-schema.org/draft/2020-12/schema#',
]);

const AJV_OPTIONS: Options = {
  strict: true,
  // Advisory checks that refuse valid schemas (a `minLength` without `type: string`, a
  // `required` name not listed in `properties`); they do not weaken what is validated.
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  allowUnionTypes: true,
  allErrors: false,
  $data: false,
  validateFormats: false,
  validateSchema: true,
  // Two tools may carry the same `$id`; neither is registered on the shared instance.
  addUsedSchema: false,
  logger: false,
};

interface Compilers {
  draft2020: Ajv2020;
  draft07: Ajv;
}

function newCompilers(): Compilers {
  return { draft2020: new Ajv2020(AJV_OPTIONS), draft07: new Ajv(AJV_OPTIONS) };
}

function schemaKeyOf(tool: ResolvedTool): string {
  return JSON.stringify(tool.inputSchema);
}

const VENDOR_KEYWORD = /^x-[A-Za-z0-9_$-]{1,62}$/;
const MAX_SCHEMA_NODES = 100_000;

/**
 * `x-` keywords (vendor extensions, as in OpenAPI) anywhere in `schema`: annotations the strict
 * compiler must accept; every other unknown keyword is refused.
 */
function vendorKeywords(schema: unknown): Set<string> {
  const found = new Set<string>();
  const stack: unknown[] = [schema];
  for (let visited = 0; stack.length > 0; visited += 1) {
    if (visited > MAX_SCHEMA_NODES) throw new Error('schema has too many nodes');
    const node = stack.pop();
    if (typeof node !== 'object' || node === null) continue;
    for (const [key, child] of Object.entries(node)) {
      if (VENDOR_KEYWORD.test(key)) found.add(key);
      stack.push(child);
    }
  }
  return found;
}

function compileOne(compilers: Compilers, tool: ResolvedTool, schemaKey: string): ToolValidator {
  const schema = tool.inputSchema as Record<string, unknown>;
  const dialect = schema['$schema'];
  try {
    if (dialect !== undefined && typeof dialect !== 'string')
      throw new Error('$schema must be a string');
    let compiler: Ajv | Ajv2020;
    if (dialect === undefined || DRAFT_2020_12.has(dialect)) compiler = compilers.draft2020;
    else if (DRAFT_07.has(dialect)) compiler = compilers.draft07;
    else throw new Error(`unsupported $schema ${JSON.stringify(dialect).slice(0, 128)}`);
    for (const keyword of vendorKeywords(schema)) {
      if (compiler.getKeyword(keyword) === false) compiler.addKeyword(keyword);
    }
    const validate = compiler.compile(schema);
    // An async validator answers with a Promise, which would pass as truthy.
    if ((validate as { $async?: unknown }).$async === true)
      throw new Error('asynchronous schemas ($async) are not supported');
    return { ok: true, schemaKey, validate };
  } catch (error) {
    return { ok: false, schemaKey, error: (error as Error).message.slice(0, 512) };
  }
}

/**
 * Compiles every tool's inputSchema; pure apart from the compiler state it creates. `previous`
 * validators are reused for tools whose schema text did not change.
 */
export function compileToolValidators(
  tools: readonly ResolvedTool[],
  previous?: ToolValidators,
): ToolValidators {
  const out = new Map<string, ToolValidator>();
  let compilers: Compilers | undefined;
  for (const tool of tools) {
    const schemaKey = schemaKeyOf(tool);
    const before = previous?.get(tool.name);
    if (before !== undefined && before.schemaKey === schemaKey) {
      out.set(tool.name, before);
      continue;
    }
    // Fresh compilers per change, so compiled schemas of old configurations can be collected.
    compilers ??= newCompilers();
    out.set(tool.name, compileOne(compilers, tool, schemaKey));
  }
  return out;
}

/** `/a/0/b~1c` → `arguments.a[0]["b/c"]`; caller-chosen names are quoted and bounded. */
export function argumentPath(instancePath: string, child?: string): string {
  const segments = instancePath === '' ? [] : instancePath.slice(1).split('/');
  if (child !== undefined) segments.push(child);
  let path = 'arguments';
  for (const raw of segments) {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (/^(0|[1-9][0-9]{0,8})$/.test(segment)) path += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/.test(segment)) path += `.${segment}`;
    else path += `[${JSON.stringify(segment.slice(0, 64))}]`;
    if (path.length > 256) return `${path.slice(0, 256)}…`;
  }
  return path;
}

/** One readable line for the first error: `arguments.text: must be string`. */
export function describeError(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  if (error.keyword === 'required' && typeof params['missingProperty'] === 'string')
    return `${argumentPath(error.instancePath, params['missingProperty'])}: is required`;
  if (
    (error.keyword === 'additionalProperties' || error.keyword === 'unevaluatedProperties') &&
    typeof (params['additionalProperty'] ?? params['unevaluatedProperty']) === 'string'
  ) {
    const name = (params['additionalProperty'] ?? params['unevaluatedProperty']) as string;
    return `${argumentPath(error.instancePath, name)}: is not allowed`;
  }
  return `${argumentPath(error.instancePath)}: ${error.message ?? `fails ${error.keyword}`}`;
}

export function checkArguments(
  validators: ToolValidators,
  toolName: string,
  args: Record<string, unknown>,
): ArgumentCheck {
  const validator = validators.get(toolName);
  if (validator === undefined)
    return { ok: false, reason: 'schema-invalid', message: 'tool has no compiled schema' };
  if (!validator.ok) return { ok: false, reason: 'schema-invalid', message: validator.error };
  let valid: unknown;
  try {
    valid = validator.validate(args);
  } catch {
    // A recursive schema walks as deep as the arguments nest: a stack overflow is a refusal.
    return { ok: false, reason: 'invalid-arguments', message: 'arguments: nested too deeply' };
  }
  if (valid === true) return { ok: true };
  const first = validator.validate.errors?.[0];
  return {
    ok: false,
    reason: 'invalid-arguments',
    message: first === undefined ? 'arguments: invalid' : describeError(first),
  };
}

export interface ArgumentValidators {
  /** The validators of `snapshot`, compiled on the first use of its revision. */
  for(snapshot: GatewaySnapshot): ToolValidators;
  check(snapshot: GatewaySnapshot, toolName: string, args: Record<string, unknown>): ArgumentCheck;
}

/**
 * One set of validators per snapshot revision. A schema that does not compile is logged when
 * its configuration is first used, once, with the tool's name.
 */
export function createArgumentValidators(logger: Logger): ArgumentValidators {
  let current: { revision: number; validators: ToolValidators } | undefined;
  const forSnapshot = (snapshot: GatewaySnapshot): ToolValidators => {
    if (current?.revision === snapshot.revision) return current.validators;
    const previous = current?.validators;
    const validators = compileToolValidators(snapshot.tools, previous);
    for (const [tool, validator] of validators) {
      if (!validator.ok && previous?.get(tool) !== validator) {
        logger.error(
          { tool, revision: snapshot.revision, error: validator.error },
          'tool inputSchema does not compile; every call to the tool is refused',
        );
      }
    }
    // A request holding an older snapshot still gets correct validators (compiled for it), it
    // just does not replace the cache.
    if (current === undefined || snapshot.revision > current.revision)
      current = { revision: snapshot.revision, validators };
    return validators;
  };
  return {
    for: forSnapshot,
    check: (snapshot, toolName, args) => checkArguments(forSnapshot(snapshot), toolName, args),
  };
}
