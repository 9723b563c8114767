/**
 * The one error base of the project. Every error that crosses a module boundary is an
 * McpworksError with a stable `code`; transports (HTTP, MCP, CLI exit codes, Kubernetes
 * conditions) map codes to their wire form in one place each, never by matching messages.
 */
export const ErrorCode = {
  InvalidInput: 'InvalidInput',
  InvalidManifest: 'InvalidManifest',
  Unauthenticated: 'Unauthenticated',
  Forbidden: 'Forbidden',
  InsufficientScope: 'InsufficientScope',
  NotFound: 'NotFound',
  Conflict: 'Conflict',
  Overloaded: 'Overloaded',
  SandboxUnavailable: 'SandboxUnavailable',
  ExecutorUnavailable: 'ExecutorUnavailable',
  Timeout: 'Timeout',
  Internal: 'Internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class McpworksError extends Error {
  readonly code: ErrorCode;
  /** Extra, non-secret facts for logs and for the client where the mapping allows it. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'McpworksError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

export function isMcpworksError(error: unknown, code?: ErrorCode): error is McpworksError {
  return error instanceof McpworksError && (code === undefined || error.code === code);
}

/** Normalises anything thrown into an McpworksError, hiding unknown internals behind `Internal`. */
export function toMcpworksError(error: unknown): McpworksError {
  if (error instanceof McpworksError) return error;
  return new McpworksError(ErrorCode.Internal, 'internal error', { cause: error });
}
