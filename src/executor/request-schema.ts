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
});

export function parseToolCallRequest(input: unknown): ToolCallRequest {
  return ToolCallRequestSchema.parse(input) as ToolCallRequest;
}
