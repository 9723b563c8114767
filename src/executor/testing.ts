/**
 * Builders for executor tests and the benchmark. The real nsjail is required: when it cannot be
 * found this throws (a missing component is a failure, never a silent skip).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EgressRuleSpec, Runtime, ToolLimits } from '../api/v1alpha1/mcpserver.ts';
import type { EgressDenial, ResolvedTool, ToolCallRequest } from './types.ts';

let counter = 0;

export function nsjailForTests(): string {
  const configured = process.env['MCPWORKS_NSJAIL'];
  if (configured && existsSync(configured)) return configured;
  const script = fileURLToPath(new URL('../../scripts/install-nsjail.sh', import.meta.url));
  const path = execFileSync(script, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  if (!existsSync(path)) throw new Error(`nsjail not found (install-nsjail.sh printed ${path})`);
  return path;
}

export const TEST_LIMITS: ToolLimits = {
  memoryMiB: 128,
  cpuMillicores: 1000,
  pids: 32,
  maxOutputBytes: 64 * 1024,
  tmpfsMiB: 16,
};

export interface CallOverrides {
  limits?: Partial<ToolLimits>;
  timeoutSeconds?: number;
  env?: Record<string, string>;
  /** secretEnv entries: variable name → the Secret key it reads. */
  secretEnv?: Record<string, { name: string; key: string }>;
  /** The tool's name (default `test-<runtime>`). */
  name?: string;
  args?: Record<string, unknown>;
  egress?: EgressRuleSpec[];
  egressDenied?: EgressDenial[];
}

/** A ToolCallRequest for `code` in `runtime`, with small test limits unless overridden. */
export function toolCall(
  runtime: Runtime,
  code: string,
  overrides: CallOverrides = {},
): ToolCallRequest {
  counter += 1;
  const tool: ResolvedTool = {
    name: overrides.name ?? `test-${runtime}`,
    description: 'test tool',
    runtime,
    code,
    inputSchema: { type: 'object' },
    timeoutSeconds: overrides.timeoutSeconds ?? 5,
    limits: { ...TEST_LIMITS, ...overrides.limits },
    ...(overrides.env
      ? { env: Object.entries(overrides.env).map(([name, value]) => ({ name, value })) }
      : {}),
    ...(overrides.secretEnv
      ? {
          secretEnv: Object.entries(overrides.secretEnv).map(([name, secretKeyRef]) => ({
            name,
            secretKeyRef,
          })),
        }
      : {}),
    ...(overrides.egress ? { egress: overrides.egress } : {}),
  } as ResolvedTool;
  return {
    callId: `call-${counter}`,
    server: { namespace: 'test', name: 'tools' },
    caller: 'Agent:test',
    tool,
    arguments: overrides.args ?? {},
    ...(overrides.egressDenied ? { egressDenied: overrides.egressDenied } : {}),
  };
}
