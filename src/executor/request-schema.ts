/** zod validation of a ToolCallRequest at the executor's edges (HTTP body, in-process calls). */
import { z } from 'zod';
import { ToolSchema } from '../api/v1alpha1/mcpserver.ts';
import type { ToolCallRequest } from './types.ts';

export const ToolCallRequestSchema = z.strictObject({
  callId: z.string().min(1).max(128),
  server: z.strictObject({
    namespace: z.string().min(1).max(253),
    name: z.string().min(1).max(253),
  }),
  // The gateway's fairness key; accepted (the in-process executor gets the gateway's request
  // as is) and not used here. The HTTP client does not send it: '' then.
  caller: z.string().max(1024).default(''),
  // The api Tool with its code resolved: `code` present, `codeFrom` already read by the gateway.
  tool: ToolSchema.refine((tool) => typeof tool.code === 'string' && tool.codeFrom === undefined, {
    message: 'tool.code must be resolved (and codeFrom absent)',
  }),
  arguments: z.record(z.string(), z.unknown()),
  // Guardrail denials the gateway's policy engine computed for this call (types.ts EgressDenial).
  egressDenied: z
    .array(
      z.strictObject({
        hosts: z.array(z.string().min(1).max(255)).min(1).max(64),
        policy: z.string().min(1).max(512),
        reason: z.string().max(1024),
      }),
    )
    .max(64)
    .optional(),
});

const ToolCallWithoutToolSchema = ToolCallRequestSchema.omit({ tool: true });

/**
 * Tools validated before, by the identity of the object the caller passed, to the copy zod
 * returned. In-process callers (serve's gateway) pass the same snapshot object on every call, so
 * the tool — the bulk of the request — is checked once per snapshot instead of once per call. The
 * executor runs the validated copy, so a caller mutating its object later cannot slip anything
 * past the check; HTTP bodies are new objects every time and always fully checked.
 */
const validatedTools = new WeakMap<object, ToolCallRequest['tool']>();

export function parseToolCallRequest(input: unknown): ToolCallRequest {
  const tool = (input as { tool?: unknown } | null)?.tool;
  const known = typeof tool === 'object' && tool !== null ? validatedTools.get(tool) : undefined;
  if (known !== undefined) {
    const { tool: _tool, ...rest } = input as Record<string, unknown>;
    return { ...ToolCallWithoutToolSchema.parse(rest), tool: known } as ToolCallRequest;
  }
  const parsed = ToolCallRequestSchema.parse(input) as ToolCallRequest;
  if (typeof tool === 'object' && tool !== null) validatedTools.set(tool, parsed.tool);
  return parsed;
}
