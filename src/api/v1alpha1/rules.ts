import { z } from 'zod';

/**
 * zod refinements that have a CRD counterpart (or are documented as controller-only). The CRD
 * generator refuses any other refinement: a check only zod makes would let the API server accept
 * what `mcpworks serve` and the controller reject.
 */
const accountedChecks = new WeakSet<object>();

/** Records the refinement just added to `schema` as accounted for; returns the schema. */
export function accountFor<S extends z.ZodType>(schema: S): S {
  const checks = (schema as unknown as { _zod: { def: { checks?: object[] } } })._zod.def.checks;
  const last = checks?.at(-1);
  if (last !== undefined) accountedChecks.add(last);
  return schema;
}

export function isAccountedCheck(check: object): boolean {
  return accountedChecks.has(check);
}

/**
 * A cross-field rule, written once: `rule` is the CEL the API server evaluates (as an
 * `x-kubernetes-validations` entry on the node, `self` being that node) and `check` is the same
 * rule in TypeScript for zod. Both see the value after defaulting. `check` must not throw on
 * malformed input: zod runs it even when a child field already failed.
 */
export interface CrossFieldRule {
  /** Stable name, for tests and docs. */
  id: string;
  /** Where the rule sits, as a path of the object it applies to (documentation and tests). */
  path: string;
  rule: string;
  message: string;
  /** Field the error names, relative to the node, in the API server's form (`.code`). */
  fieldPath?: string;
  reason?:
    'FieldValueInvalid' | 'FieldValueRequired' | 'FieldValueForbidden' | 'FieldValueDuplicate';
  check(value: unknown): boolean;
}

/** A rule only the controller (and `mcpworks serve`) can enforce: the API server has no CEL compiler for it. */
export interface ControllerOnlyRule {
  id: string;
  path: string;
  why: string;
}

export type KubeValidation = Pick<CrossFieldRule, 'rule' | 'message' | 'fieldPath' | 'reason'>;

export function toKubeValidation(rule: CrossFieldRule): KubeValidation {
  const out: KubeValidation = { rule: rule.rule, message: rule.message };
  if (rule.fieldPath !== undefined) out.fieldPath = rule.fieldPath;
  if (rule.reason !== undefined) out.reason = rule.reason;
  return out;
}

/** `.code` / `.a.b` → ['code'] / ['a', 'b'] for a zod issue path. */
export function fieldPathSegments(fieldPath: string | undefined): string[] {
  if (fieldPath === undefined || fieldPath === '') return [];
  return fieldPath.replace(/^\./, '').split('.');
}

/** Attaches rules to a schema: zod enforces `check`, the CRD generator emits `rule`. */
export function withRules<S extends z.ZodType>(schema: S, rules: readonly CrossFieldRule[]): S {
  const checked = accountFor(
    schema.superRefine((value, ctx) => {
      for (const rule of rules) {
        if (!rule.check(value)) {
          ctx.addIssue({
            code: 'custom',
            message: rule.message,
            path: fieldPathSegments(rule.fieldPath),
          });
        }
      }
    }),
  );
  return checked.meta({ 'x-kubernetes-validations': rules.map(toKubeValidation) });
}

/**
 * A list whose items are keyed by one field (a Kubernetes list-map): the API server rejects
 * duplicate keys by itself, zod with the same path (`list[i]`) and a matching message.
 */
export function keyedList<S extends z.ZodType>(
  item: S,
  key: string,
  bounds: { min?: number; max: number },
) {
  let list = z.array(item).max(bounds.max);
  if (bounds.min !== undefined) list = list.min(bounds.min);
  const checked = accountFor(
    list.superRefine((items, ctx) => {
      const seen = new Set<unknown>();
      items.forEach((entry, index) => {
        const value = isRecord(entry) ? entry[key] : undefined;
        if (value === undefined) return;
        if (seen.has(value)) {
          ctx.addIssue({
            code: 'custom',
            message: `Duplicate value: ${JSON.stringify({ [key]: value })}`,
            path: [index],
          });
        }
        seen.add(value);
      });
    }),
  );
  return checked.meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': [key] });
}

/**
 * A map with at most `max` entries: `maxProperties` in the CRD (which CEL cost estimation needs),
 * the same bound in zod.
 */
export function boundedMap<S extends z.ZodType>(map: S, max: number): S {
  const checked = accountFor(
    map.superRefine((value, ctx) => {
      if (isRecord(value) && Object.keys(value).length > max) {
        ctx.addIssue({ code: 'custom', message: `Too many: must have at most ${max} entries` });
      }
    }),
  );
  return checked.meta({ maxProperties: max });
}

/**
 * A string of at most `max` characters counted as the API server counts them (Unicode code points;
 * JavaScript's `length` counts UTF-16 units, so zod's own `.max()` would reject a string of emoji
 * the API server accepts).
 */
export function text(max: number, min = 0) {
  let schema = z.string();
  if (min > 0) schema = schema.min(min);
  const checked = accountFor(
    schema.superRefine((value, ctx) => {
      if ([...value].length > max) {
        ctx.addIssue({
          code: 'too_big',
          origin: 'string',
          maximum: max,
          inclusive: true,
          input: value,
          message: `Too long: may not be longer than ${max} characters`,
        });
      }
    }),
  );
  return checked.meta({ maxLength: max });
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** CEL `has(self.x)`: present (zod output never holds `undefined` for a present field). */
export function has(value: unknown, key: string): boolean {
  return isRecord(value) && value[key] !== undefined;
}
