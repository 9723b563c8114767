import assert from 'node:assert/strict';
import { test } from 'node:test';
import { manualClock } from '../../shared/clock.ts';
import { createEventAggregator, type AggregatedEvent, type EventObservation } from './events.ts';

function recordingPublisher(failWith?: Error) {
  const published: AggregatedEvent[] = [];
  return {
    published,
    async publish(event: AggregatedEvent) {
      if (failWith) throw failWith;
      published.push(structuredClone(event));
    },
  };
}

function denial(
  name = 'demo',
  reason = 'ToolCallDenied',
  message = 'agent denied',
): EventObservation {
  return {
    regarding: { apiVersion: 'mcpworks.io/v1alpha1', kind: 'McpServer', namespace: 'ns', name },
    type: 'Warning',
    reason,
    message,
  };
}

test('observations of one object and reason inside a window become one Event with a count', async () => {
  const clock = manualClock();
  const publisher = recordingPublisher();
  const sink = createEventAggregator({ publisher, clock, windowMs: 60_000 });
  for (let i = 0; i < 500; i++) sink.observe(denial());
  clock.advance(60_000);
  await sink.flush();
  assert.equal(publisher.published.length, 1);
  assert.equal(publisher.published[0]!.count, 500);
});

test('nothing is published before the window ends', async () => {
  const clock = manualClock();
  const publisher = recordingPublisher();
  const sink = createEventAggregator({ publisher, clock, windowMs: 60_000 });
  sink.observe(denial());
  clock.advance(59_999);
  await sink.flush();
  assert.equal(publisher.published.length, 0);
  assert.equal(sink.stats().pending, 1);
});

test('different reasons and objects are separate Events', async () => {
  const clock = manualClock();
  const publisher = recordingPublisher();
  const sink = createEventAggregator({ publisher, clock, windowMs: 1_000 });
  sink.observe(denial('a'));
  sink.observe(denial('b'));
  sink.observe(denial('a', 'ToolCallFailed'));
  clock.advance(1_000);
  await sink.flush();
  assert.equal(publisher.published.length, 3);
});

test('the first and last timestamps span the window; the message is the latest one', async () => {
  const clock = manualClock(new Date('2026-01-01T00:00:00Z'));
  const publisher = recordingPublisher();
  const sink = createEventAggregator({ publisher, clock, windowMs: 10_000 });
  sink.observe(denial('demo', 'ToolCallDenied', 'first'));
  clock.advance(4_000);
  sink.observe(denial('demo', 'ToolCallDenied', 'second'));
  clock.advance(6_000);
  await sink.flush();
  const [event] = publisher.published;
  assert.equal(event!.firstTimestamp.toISOString(), '2026-01-01T00:00:00.000Z');
  assert.equal(event!.lastTimestamp.toISOString(), '2026-01-01T00:00:04.000Z');
  assert.equal(event!.message, 'second');
});

test('the token bucket bounds Events per minute across keys; the rest are dropped and counted', async () => {
  const clock = manualClock();
  const publisher = recordingPublisher();
  const sink = createEventAggregator({ publisher, clock, windowMs: 1_000, burst: 3, perMinute: 6 });
  for (let i = 0; i < 10; i++) sink.observe(denial(`server-${i}`));
  clock.advance(1_000);
  await sink.flush();
  assert.equal(publisher.published.length, 3);
  assert.equal(sink.stats().dropped, 7);
});

test('the bucket refills with time', async () => {
  const clock = manualClock();
  const publisher = recordingPublisher();
  const sink = createEventAggregator({ publisher, clock, windowMs: 1_000, burst: 1, perMinute: 6 });
  sink.observe(denial('a'));
  clock.advance(1_000);
  await sink.flush();
  clock.advance(10_000); // one token back at 6 per minute
  sink.observe(denial('b'));
  clock.advance(1_000);
  await sink.flush();
  assert.equal(publisher.published.length, 2);
});

test('distinct keys beyond maxKeys are dropped instead of growing memory', () => {
  const clock = manualClock();
  const sink = createEventAggregator({ publisher: recordingPublisher(), clock, maxKeys: 5 });
  for (let i = 0; i < 100; i++) sink.observe(denial(`s-${i}`));
  assert.equal(sink.stats().pending, 5);
  assert.equal(sink.stats().dropped, 95);
});

test('a failing publisher loses the Event but not the sink', async () => {
  const clock = manualClock();
  const sink = createEventAggregator({
    publisher: recordingPublisher(new Error('forbidden')),
    clock,
    windowMs: 1,
  });
  sink.observe(denial());
  clock.advance(1);
  await sink.flush();
  assert.deepEqual(sink.stats(), { published: 0, dropped: 1, pending: 0 });
});

test('flush(all) publishes windows that are still open (shutdown)', async () => {
  const clock = manualClock();
  const publisher = recordingPublisher();
  const sink = createEventAggregator({ publisher, clock, windowMs: 60_000 });
  sink.observe(denial());
  await sink.flush(true);
  assert.equal(publisher.published.length, 1);
});

test('bad options are rejected when the sink is built', () => {
  assert.throws(
    () =>
      createEventAggregator({ publisher: recordingPublisher(), clock: manualClock(), burst: 0 }),
    RangeError,
  );
});
