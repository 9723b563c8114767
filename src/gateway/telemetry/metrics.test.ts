import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { manualClock } from '../../shared/clock.ts';
import { createDecisionRecorder } from '../decisions/recorder.ts';
import { entry } from '../decisions/testing/builders.ts';
import { createGatewayMetrics, lastSeqDecisionSink, ReasonCode } from './metrics.ts';

test('metrics live on the registry passed in, not the global one', async () => {
  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  metrics.decision({
    server: 'ns/s',
    tool: 'echo',
    effect: 'allow',
    reasonCode: ReasonCode.PolicyAllow,
  });
  assert.match(
    await registry.metrics(),
    /mcpworks_decisions_total\{server="ns\/s",tool="echo",effect="allow",reason_code="policy_allow"\} 1/,
  );
});

test('two gateways in one process do not collide', () => {
  createGatewayMetrics(new Registry());
  assert.doesNotThrow(() => createGatewayMetrics(new Registry()));
});

test('tool labels are only declared tools; anything else is _unknown', () => {
  const metrics = createGatewayMetrics(new Registry());
  const declared = new Set(['echo']);
  assert.equal(metrics.toolLabel('echo', declared), 'echo');
  assert.equal(metrics.toolLabel('x'.repeat(1000), declared), '_unknown');
  assert.equal(metrics.toolLabel(undefined, declared), '');
});

test('auth failure labels are bounded to the known methods and reasons', async () => {
  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  metrics.authFailure({ method: 'made-up', reason: 'attacker text' });
  metrics.authFailure({ method: undefined, reason: 'expired' });
  const text = await registry.metrics();
  assert.match(text, /mcpworks_auth_failures_total\{method="_unknown",reason="_unknown"\} 1/);
  assert.match(text, /mcpworks_auth_failures_total\{method="none",reason="expired"\} 1/);
});

test('sandbox outcomes outside the enum are folded into _unknown', async () => {
  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  metrics.sandboxOutcome({ server: 's', tool: 't', outcome: 'weird' });
  assert.match(await registry.metrics(), /outcome="_unknown"/);
});

test('request durations are labelled by a bounded method set', async () => {
  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  metrics.requestDuration({ server: 's', method: 'tools/call' }, 0.001);
  metrics.requestDuration({ server: 's', method: 'evil/method/123' }, 0.001);
  const text = await registry.metrics();
  assert.match(
    text,
    /mcpworks_request_duration_seconds_count\{server="s",method="tools\/call"\} 1/,
  );
  assert.match(text, /mcpworks_request_duration_seconds_count\{server="s",method="_other"\} 1/);
});

test('queue refusals are counted per server and bounded reason; the queue gauges per server', async () => {
  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  metrics.queueRefusal({ server: 'ns/s', reason: 'principal-share' });
  metrics.queueRefusal({ server: 'ns/s', reason: 'attacker text' });
  let waiting = 3;
  metrics.observeQueue(() => [{ server: 'ns/s', running: 2, waiting }]);
  let text = await registry.metrics();
  assert.match(text, /mcpworks_queue_refusals_total\{server="ns\/s",reason="principal-share"\} 1/);
  assert.match(text, /mcpworks_queue_refusals_total\{server="ns\/s",reason="_unknown"\} 1/);
  assert.match(text, /mcpworks_queue_waiting\{server="ns\/s"\} 3/);
  assert.match(text, /mcpworks_queue_running\{server="ns\/s"\} 2/);
  waiting = 0;
  text = await registry.metrics();
  assert.match(text, /mcpworks_queue_waiting\{server="ns\/s"\} 0/);
});

test('the last-seq sink exports each writer’s last seq with its signing key id', async () => {
  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  const recorder = createDecisionRecorder({
    sinks: [lastSeqDecisionSink(metrics)],
    clock: manualClock(),
    writerId: 'gw-7',
  });
  for (let i = 0; i < 3; i++) recorder.record(entry());
  assert.match(
    await registry.metrics(),
    /^mcpworks_decision_log_last_seq\{writer_id="gw-7",key_id=""\} 2$/m,
  );
});
