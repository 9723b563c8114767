import { Environment } from '@marcbachmann/cel-js';

/**
 * Policy rule conditions are CEL over the call: `args` (the tool arguments, a map), `tool` (its
 * name) and `subject` (a map: kind, name, groups, ...). The API server cannot compile them (its CEL
 * only sees the object being validated), so the controller and `mcpworks serve` reject a
 * condition that does not parse, references an unknown variable or is not boolean. The policy
 * engine evaluates conditions in this same environment.
 */
export function conditionEnvironment(): Environment {
  return new Environment({ unlistedVariablesAreDyn: false, limits: CONDITION_LIMITS })
    .registerVariable('args', 'map')
    .registerVariable('tool', 'string')
    .registerVariable('subject', 'map');
}

/** Parse-time bounds so a hostile policy cannot make the checker or the evaluator work hard. */
export const CONDITION_LIMITS = {
  maxAstNodes: 2000,
  maxDepth: 64,
  maxListElements: 256,
  maxMapEntries: 256,
  maxCallArguments: 16,
} as const;

let shared: Environment | undefined;

/** Returns why `expression` is not a valid condition, or `undefined` when it is. */
export function checkConditionSyntax(expression: string): string | undefined {
  shared ??= conditionEnvironment();
  let result: { valid: boolean; type?: string; error?: { message?: string } };
  try {
    result = shared.check(expression) as typeof result;
  } catch (error) {
    return `does not compile: ${firstLine(error instanceof Error ? error.message : String(error))}`;
  }
  if (!result.valid)
    return `does not compile: ${firstLine(result.error?.message ?? 'invalid expression')}`;
  if (result.type !== 'bool' && result.type !== 'dyn') {
    return `must be a boolean expression, got ${result.type ?? 'unknown type'}`;
  }
  return undefined;
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? text;
}
