import { conditionEnvironment, checkConditionSyntax } from '../../api/v1alpha1/conditions.ts';

/**
 * Rule conditions: CEL over `args` (the call's arguments), `tool` and `subject`.
 *
 * @marcbachmann/cel-js bounds parsing (AST size, depth, literal sizes; see CONDITION_LIMITS) but has
 * no evaluation cost limit, so the engine adds its own, decided before anything runs:
 * - expression length ≤ 2,048 characters and the parse-time limits above;
 * - arguments heavier than MAX_ARGUMENT_WEIGHT (JSON values plus one per 256 string characters)
 *   or nested deeper than 64 levels are never evaluated;
 * - a condition with comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) has an
 *   estimated cost `astNodes × (values + characters + 1) ^ comprehensionDepth` that must stay
 *   ≤ MAX_CONDITION_COST: every character counts, because `split()` turns a string into a list
 *   that a comprehension can iterate (nested comprehensions over it would be quadratic);
 * - `matches()` only with a literal pattern that has no backreference, no quantified group that
 *   itself holds a quantifier or an alternation, and at most two unbounded quantifiers (the
 *   evaluator uses backtracking JavaScript regular expressions), and only on arguments whose
 *   strings are ≤ 4,096 characters;
 * There is deliberately no wall-clock guard: it could not interrupt an evaluation, only discard
 * its result, and it made the same request Allow on an idle machine and Deny on a loaded one.
 * Decisions depend on the policies and the request alone; the static estimate bounds the work.
 * A condition that errors, returns a non-boolean or overruns is reported as such; the engine then
 * counts it as a match for Deny and no match for Allow.
 */
export const MAX_CONDITION_LENGTH = 2048;
export const MAX_CONDITION_COST = 1_000_000;
export const MAX_ARGUMENT_WEIGHT = 100_000;
export const MAX_MATCHES_STRING = 4096;

const COMPREHENSIONS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);

export interface ConditionInput {
  args: Record<string, unknown>;
  tool: string;
  subject: Record<string, unknown>;
}

/** Arguments converted once per request for CEL, with what the cost estimate needs. */
export interface PreparedArguments {
  input: ConditionInput;
  /** JSON values plus every string character: the longest list a comprehension could iterate. */
  expansion: number;
  longestString: number;
  /** Set when the arguments are too large to evaluate any condition on. */
  tooHeavy?: string;
}

export type ConditionResult = { ok: true; value: boolean } | { ok: false; error: string };

export interface CompiledCondition {
  source: string;
  evaluate(prepared: PreparedArguments): ConditionResult;
}

type AstNode = { op: string; args: unknown };
type Evaluable = ((context: ConditionInput) => unknown) & { ast: AstNode };

let environment: ReturnType<typeof conditionEnvironment> | undefined;

const compiledCache = new Map<string, CompiledCondition | { error: string }>();
const MAX_CACHED_CONDITIONS = 4096;

/** Compiles a condition; results are shared between policies that repeat an expression (bounded cache). */
export function compileCondition(source: string): CompiledCondition | { error: string } {
  let result = compiledCache.get(source);
  if (result === undefined) {
    result = compileUncached(source);
    if (compiledCache.size >= MAX_CACHED_CONDITIONS) compiledCache.clear();
    compiledCache.set(source, result);
  }
  return result;
}

function compileUncached(source: string): CompiledCondition | { error: string } {
  if (source.length > MAX_CONDITION_LENGTH)
    return { error: `longer than ${MAX_CONDITION_LENGTH} characters` };
  const syntax = checkConditionSyntax(source);
  if (syntax !== undefined) return { error: syntax };
  environment ??= conditionEnvironment();
  let evaluable: Evaluable;
  try {
    evaluable = environment.parse(source) as unknown as Evaluable;
  } catch (error) {
    return { error: `does not compile: ${firstLine(error)}` };
  }
  const shape = { nodes: 0, depth: 0, matches: 0 };
  const problem = inspect(evaluable.ast, 0, shape);
  if (problem !== undefined) return { error: problem };
  const { nodes, depth, matches } = shape;

  return {
    source,
    evaluate(prepared) {
      if (prepared.tooHeavy !== undefined) return { ok: false, error: prepared.tooHeavy };
      const cost = depth === 0 ? nodes : nodes * (prepared.expansion + 1) ** depth;
      if (cost > MAX_CONDITION_COST) {
        return {
          ok: false,
          error: `estimated cost ${cost.toExponential(2)} exceeds the limit ${MAX_CONDITION_COST}`,
        };
      }
      if (matches > 0 && prepared.longestString > MAX_MATCHES_STRING) {
        return {
          ok: false,
          error: `matches() on a string longer than ${MAX_MATCHES_STRING} characters exceeds the cost limit`,
        };
      }
      let value: unknown;
      try {
        value = evaluable(prepared.input);
      } catch (error) {
        return { ok: false, error: `evaluation error: ${firstLine(error)}` };
      }
      if (typeof value !== 'boolean')
        return { ok: false, error: `evaluated to ${typeof value}, not bool` };
      return { ok: true, value };
    },
  };
}

function inspect(
  node: unknown,
  depth: number,
  shape: { nodes: number; depth: number; matches: number },
): string | undefined {
  if (Array.isArray(node)) {
    for (const child of node) {
      const problem = inspect(child, depth, shape);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  if (typeof node !== 'object' || node === null || !('op' in node)) return undefined;
  const { op, args } = node as AstNode;
  shape.nodes++;
  let childDepth = depth;
  if ((op === 'rcall' || op === 'call') && Array.isArray(args)) {
    const name = args[0];
    if (op === 'rcall' && COMPREHENSIONS.has(name as string)) {
      childDepth = depth + 1;
      shape.depth = Math.max(shape.depth, childDepth);
    }
    if (name === 'matches') {
      shape.matches++;
      const patternNode = (
        op === 'rcall' ? (args[2] as unknown[])[0] : (args[1] as unknown[])[1]
      ) as AstNode | undefined;
      if (patternNode?.op !== 'value' || typeof patternNode.args !== 'string') {
        return 'matches() needs a literal pattern (a pattern from the arguments could be made to backtrack forever)';
      }
      const unsafe = unsafeRegex(patternNode.args);
      if (unsafe !== undefined)
        return `matches() pattern ${JSON.stringify(patternNode.args)} ${unsafe}`;
    }
  }
  return inspect(args, childDepth, shape);
}

/** Why a pattern could backtrack badly, or undefined. Conservative by design. */
export function unsafeRegex(pattern: string): string | undefined {
  const groups: { quantified: boolean; alternation: boolean }[] = [
    { quantified: false, alternation: false },
  ];
  let unbounded = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (/[1-9k]/.test(next)) return 'uses a backreference';
      i++;
      continue;
    }
    if (c === '[') {
      i++;
      if (pattern[i] === '^') i++;
      if (pattern[i] === ']') i++;
      while (i < pattern.length && pattern[i] !== ']') {
        if (pattern[i] === '\\') i++;
        i++;
      }
      continue;
    }
    const top = groups.at(-1) as { quantified: boolean; alternation: boolean };
    if (c === '(') groups.push({ quantified: false, alternation: false });
    else if (c === '|') top.alternation = true;
    else if (c === ')') {
      const closed = groups.pop();
      if (closed === undefined || groups.length === 0) return 'has an unbalanced ")"';
      const next = pattern[i + 1];
      if (next === '*' || next === '+' || next === '?' || next === '{') {
        if (closed.quantified || closed.alternation)
          return 'repeats a group that holds a quantifier or "|"';
      }
      if (closed.quantified) (groups.at(-1) as { quantified: boolean }).quantified = true;
    } else if (c === '*' || c === '+' || c === '?' || c === '{') {
      top.quantified = true;
      if (c === '*' || c === '+') unbounded++;
      if (c === '{' && /^\{\d*,\}/.test(pattern.slice(i))) unbounded++;
    }
  }
  if (groups.length !== 1) return 'has an unbalanced "("';
  if (unbounded > 2) return 'has more than two unbounded quantifiers';
  try {
    new RegExp(pattern);
  } catch {
    return 'is not a valid regular expression';
  }
  return undefined;
}

/**
 * Converts JSON arguments for CEL once per request: safe integers become CEL ints (BigInt) so that
 * `args.n == 3` and `args.n + 1` work as in Kubernetes CEL; objects get a null prototype so a
 * `__proto__` key is just a key.
 */
export function prepareArguments(
  args: Record<string, unknown> | undefined,
  tool: string,
  subject: Record<string, unknown>,
): PreparedArguments {
  const stats = { values: 0, chars: 0, longest: 0 };
  let converted: Record<string, unknown>;
  try {
    converted = convert(args ?? {}, stats, 0) as Record<string, unknown>;
  } catch (error) {
    return {
      input: { args: Object.create(null), tool, subject },
      expansion: Infinity,
      longestString: Infinity,
      tooHeavy: firstLine(error),
    };
  }
  return {
    input: { args: converted, tool, subject },
    expansion: stats.values + stats.chars,
    longestString: stats.longest,
  };
}

const MAX_ARGUMENT_DEPTH = 64;

function convert(
  value: unknown,
  stats: { values: number; chars: number; longest: number },
  depth: number,
): unknown {
  if (++stats.values + stats.chars / 256 > MAX_ARGUMENT_WEIGHT) {
    throw new Error(`arguments exceed the condition input limit (${MAX_ARGUMENT_WEIGHT} values)`);
  }
  if (depth > MAX_ARGUMENT_DEPTH)
    throw new Error(`arguments nest deeper than ${MAX_ARGUMENT_DEPTH} levels`);
  if (typeof value === 'string') {
    stats.chars += value.length;
    if (value.length > stats.longest) stats.longest = value.length;
    return value;
  }
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map((item) => convert(item, stats, depth + 1));
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = Object.create(null);
    for (const [key, member] of Object.entries(value)) {
      stats.chars += key.length;
      out[key] = convert(member, stats, depth + 1);
    }
    return out;
  }
  return value;
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n', 1)[0] ?? text;
}
