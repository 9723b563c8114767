import { ErrorCode, McpworksError } from '../shared/errors.ts';

/**
 * The one place where API server answers become typed errors. A Status body's `reason` and
 * `message` are kept (they are what a person needs: "secrets \"keys\" not found"); the HTTP status
 * picks the stable code.
 */
export interface KubeStatusBody {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export function kubeApiError(
  httpStatus: number,
  body: unknown,
  context: { verb: string; path: string },
): McpworksError {
  const status = isStatusBody(body) ? body : {};
  const reason = status.reason ?? `HTTP${httpStatus}`;
  const message = status.message ?? `HTTP ${httpStatus}`;
  return new McpworksError(
    codeForStatus(httpStatus),
    `${context.verb} ${context.path}: ${message}`,
    {
      details: { httpStatus, reason, verb: context.verb, path: context.path },
    },
  );
}

export function codeForStatus(httpStatus: number): ErrorCode {
  switch (httpStatus) {
    case 400:
    case 422:
      return ErrorCode.InvalidInput;
    case 401:
      return ErrorCode.Unauthenticated;
    case 403:
      return ErrorCode.Forbidden;
    case 404:
      return ErrorCode.NotFound;
    case 409:
      return ErrorCode.Conflict;
    case 410:
      // 410 Gone: a watch's resourceVersion is too old; the informer relists.
      return ErrorCode.Conflict;
    case 429:
      return ErrorCode.Overloaded;
    case 504:
      return ErrorCode.Timeout;
    default:
      return ErrorCode.Internal;
  }
}

/** The HTTP status carried by an error from this client, if any. */
export function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof McpworksError && typeof error.details['httpStatus'] === 'number') {
    return error.details['httpStatus'];
  }
  return undefined;
}

export function isNotFound(error: unknown): boolean {
  return httpStatusOf(error) === 404;
}

export function isConflict(error: unknown): boolean {
  return httpStatusOf(error) === 409;
}

function isStatusBody(body: unknown): body is KubeStatusBody {
  return typeof body === 'object' && body !== null && (body as KubeStatusBody).kind === 'Status';
}
