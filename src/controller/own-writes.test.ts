import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createOwnWrites } from './own-writes.ts';

test('the echo of a write is absorbed once when the response comes first', () => {
  const own = createOwnWrites();
  own.begin('deployments:ns/a');
  assert.equal(own.end('deployments:ns/a', '12'), false);
  assert.equal(own.absorbs('deployments:ns/a', '12'), true);
  // The next change of the object is someone else's.
  assert.equal(own.absorbs('deployments:ns/a', '13'), false);
  assert.equal(own.size(), 0);
});

test('the echo of a write is absorbed when it comes before the response', () => {
  const own = createOwnWrites();
  own.begin('mcpservers:ns/a');
  assert.equal(own.absorbs('mcpservers:ns/a', '12'), true); // held
  assert.equal(own.end('mcpservers:ns/a', '12'), false); // it was the echo
  assert.equal(own.size(), 0);
});

test('a change of someone else held during a write is reported at its end', () => {
  const own = createOwnWrites();
  own.begin('mcpservers:ns/a');
  assert.equal(own.absorbs('mcpservers:ns/a', '11'), true); // a spec change, then our write
  assert.equal(own.absorbs('mcpservers:ns/a', '12'), true);
  assert.equal(own.end('mcpservers:ns/a', '12'), true);
});

test('an event held during a failed write is reported; a failed write expects no echo', () => {
  const own = createOwnWrites();
  own.begin('services:ns/a');
  assert.equal(own.end('services:ns/a', undefined), false);
  assert.equal(own.absorbs('services:ns/a', '5'), false);
  own.begin('services:ns/a');
  own.absorbs('services:ns/a', '6');
  assert.equal(own.end('services:ns/a', undefined), true);
});

test('an earlier change arriving after our write is not taken for its echo', () => {
  const own = createOwnWrites();
  own.begin('secrets:ns/a');
  own.end('secrets:ns/a', '12');
  assert.equal(own.absorbs('secrets:ns/a', '11'), false);
  assert.equal(own.absorbs('secrets:ns/a', '12'), true);
});

test('other objects are unaffected; a deletion forgets the expected echo', () => {
  const own = createOwnWrites();
  own.begin('secrets:ns/a');
  assert.equal(own.absorbs('secrets:ns/b', '3'), false);
  own.end('secrets:ns/a', '4');
  own.forget('secrets:ns/a');
  assert.equal(own.absorbs('secrets:ns/a', '4'), false);
});
