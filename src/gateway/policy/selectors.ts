import type { LabelSelector } from '../../api/v1alpha1/common.ts';

export type LabelPredicate = (labels: Record<string, string>) => boolean;

/**
 * metav1.LabelSelector semantics: all `matchLabels` and all `matchExpressions` must hold; an empty
 * selector selects everything. Returns the reason when the selector is invalid (`In`/`NotIn`
 * without values, `Exists`/`DoesNotExist` with values), as the API server would.
 */
export function compileLabelSelector(
  selector: LabelSelector,
): LabelPredicate | { error: string; path: string } {
  const checks: LabelPredicate[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    checks.push((labels) => labels[key] === value);
  }
  const expressions = selector.matchExpressions ?? [];
  for (let i = 0; i < expressions.length; i++) {
    const {
      key,
      operator,
      values = [],
    } = expressions[i] as NonNullable<LabelSelector['matchExpressions']>[number];
    const path = `matchExpressions[${i}].values`;
    switch (operator) {
      case 'In':
      case 'NotIn': {
        if (values.length === 0)
          return { error: `operator ${operator} needs at least one value`, path };
        const set = new Set(values);
        const wantIn = operator === 'In';
        checks.push((labels) => {
          const value = labels[key];
          if (value === undefined) return !wantIn;
          return set.has(value) === wantIn;
        });
        break;
      }
      case 'Exists':
      case 'DoesNotExist': {
        if (values.length > 0) return { error: `operator ${operator} takes no values`, path };
        const wantPresent = operator === 'Exists';
        checks.push((labels) => Object.hasOwn(labels, key) === wantPresent);
        break;
      }
    }
  }
  if (checks.length === 0) return () => true;
  return (labels) => checks.every((check) => check(labels));
}
