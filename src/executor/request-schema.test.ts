import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_LIMITS } from './sandbox-executor.ts';
import { parseToolCallRequest } from './request-schema.ts';
import { toolCall } from './testing.ts';

const request = () =>
  toolCall('python', 'def main(args):\n    return 1', { limits: DEFAULT_LIMITS });

test('a tool object checked once is not checked again, but the rest of the request is', () => {
  const first = request();
  parseToolCallRequest(first);
  assert.throws(
    () => parseToolCallRequest({ ...first, callId: '' }),
    /callId|too_small|at least/i,
    'the same tool object does not exempt the rest of the request',
  );
  assert.throws(() => parseToolCallRequest({ ...first, arguments: 'x' }), /arguments|record/i);
});

test('a caller mutating its tool object after the check gets the checked copy run', () => {
  const call = request();
  const checked = parseToolCallRequest(call);
  (call.tool as { code: string }).code = 'import os\ndef main(args):\n    return os.getcwd()';
  (call.tool as { runtime: string }).runtime = 'not-a-runtime';
  const again = parseToolCallRequest(call);
  assert.equal(again.tool.code, checked.tool.code);
  assert.equal(again.tool.runtime, 'python');
});

test('a new tool object is checked in full', () => {
  const call = request();
  assert.throws(() =>
    parseToolCallRequest({ ...call, tool: { ...call.tool, runtime: 'not-a-runtime' } }),
  );
});
