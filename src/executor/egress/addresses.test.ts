import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { classifyAddress, embeddedIPv4, ipv6Groups } from './addresses.ts';

function rangeOf(address: string): string {
  const result = classifyAddress(address);
  return result.public ? 'public' : result.range;
}

describe('classifyAddress', () => {
  const table: [string, string][] = [
    ['1.1.1.1', 'public'],
    ['8.8.8.8', 'public'],
    ['140.82.112.3', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'this-network'],
    ['10.0.0.5', 'private'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['100.128.0.1', 'public'],
    ['100.100.100.200', 'metadata'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['169.254.169.254', 'metadata'],
    ['169.254.1.1', 'link-local'],
    ['172.15.255.255', 'public'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.0.0.8', 'ietf-protocol'],
    ['192.0.2.1', 'documentation'],
    ['192.168.1.1', 'private'],
    ['198.18.0.1', 'benchmarking'],
    ['198.19.255.255', 'benchmarking'],
    ['198.20.0.1', 'public'],
    ['224.0.0.251', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'reserved'],
    ['2606:4700:4700::1111', 'public'],
    ['2a00:1450:4001:82b::200e', 'public'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fc00::1', 'unique-local'],
    ['fd12:3456::1', 'unique-local'],
    ['fd00:ec2::254', 'metadata'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['2001::1', 'ietf-protocol'],
    ['100::1', 'reserved'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['64:ff9b::808:808', 'public'],
    ['64:ff9b:1::1', 'reserved'],
    ['2002:a00:1::1', 'private'],
    ['2002:808:808::1', 'public'],
    ['::127.0.0.1', 'reserved'],
    ['4000::1', 'not-global-unicast'],
    ['not-an-ip', 'invalid'],
    ['[::1]', 'invalid'],
    ['', 'invalid'],
  ];
  for (const [address, expected] of table) {
    test(`${address || '(empty)'} is ${expected}`, () => {
      assert.equal(rangeOf(address), expected);
    });
  }

  test('names the family of a non-public address', () => {
    assert.deepEqual(classifyAddress('10.0.0.1'), { public: false, range: 'private', family: 4 });
    assert.deepEqual(classifyAddress('::ffff:10.0.0.1'), {
      public: false,
      range: 'private',
      family: 6,
    });
  });
});

describe('ipv6Groups', () => {
  test('expands ::, a trailing dotted IPv4 part and a zone', () => {
    assert.deepEqual(ipv6Groups('::'), [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.deepEqual(ipv6Groups('1::2'), [1, 0, 0, 0, 0, 0, 0, 2]);
    assert.deepEqual(ipv6Groups('::ffff:1.2.3.4'), [0, 0, 0, 0, 0, 0xffff, 0x0102, 0x0304]);
    assert.deepEqual(ipv6Groups('fe80::1%eth0'), [0xfe80, 0, 0, 0, 0, 0, 0, 1]);
    assert.deepEqual(ipv6Groups('1:2:3:4:5:6:7:8'), [1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe('embeddedIPv4', () => {
  test('finds the IPv4 address in v4-mapped, NAT64 and 6to4 forms, and only there', () => {
    assert.equal(embeddedIPv4('::ffff:a9fe:a9fe'), '169.254.169.254');
    assert.equal(embeddedIPv4('64:ff9b::7f00:1'), '127.0.0.1');
    assert.equal(embeddedIPv4('2002:c0a8:101::'), '192.168.1.1');
    assert.equal(embeddedIPv4('2606:4700::1111'), undefined);
  });
});
