import { BlockList, isIP, isIPv4 } from 'node:net';

/**
 * Whether an IP address is one the egress proxy may connect to. Only public unicast addresses
 * are; everything else (loopback, private, link-local, cloud metadata, multicast, reserved, ...)
 * is refused with the name of its range, also when it is reached through an IPv6 form that
 * embeds an IPv4 address (v4-mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`).
 */
export type AddressRange =
  | 'invalid'
  | 'unspecified'
  | 'this-network'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'metadata'
  | 'ietf-protocol'
  | 'documentation'
  | 'benchmarking'
  | 'multicast'
  | 'reserved'
  | 'unique-local'
  | 'not-global-unicast';

export type AddressClass =
  { public: true; family: 4 | 6 } | { public: false; range: AddressRange; family?: 4 | 6 };

type Range = [network: string, prefix: number, range: AddressRange];

// Most specific first: the first matching list names the range.
const V4_RANGES: Range[] = [
  ['169.254.169.254', 32, 'metadata'],
  ['100.100.100.200', 32, 'metadata'],
  ['0.0.0.0', 32, 'unspecified'],
  ['0.0.0.0', 8, 'this-network'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'shared'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'ietf-protocol'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, 'reserved'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved'],
];

// IPv6 forms that embed an IPv4 address are handled before these (see embeddedIPv4).
const V6_RANGES: Range[] = [
  ['fd00:ec2::254', 128, 'metadata'],
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['::', 96, 'reserved'],
  ['100::', 64, 'reserved'],
  ['2001::', 23, 'ietf-protocol'],
  ['2001:db8::', 32, 'documentation'],
  ['3fff::', 20, 'documentation'],
  ['fc00::', 7, 'unique-local'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'reserved'],
  ['ff00::', 8, 'multicast'],
];

function blockLists(ranges: Range[], family: 'ipv4' | 'ipv6'): [BlockList, AddressRange][] {
  return ranges.map(([network, prefix, range]) => {
    const list = new BlockList();
    list.addSubnet(network, prefix, family);
    return [list, range];
  });
}

const V4_LISTS = blockLists(V4_RANGES, 'ipv4');
const V6_LISTS = blockLists(V6_RANGES, 'ipv6');
const GLOBAL_UNICAST_V6 = new BlockList();
GLOBAL_UNICAST_V6.addSubnet('2000::', 3, 'ipv6');

/** The eight 16-bit groups of a valid IPv6 address (a trailing dotted IPv4 part included). */
export function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase();
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (isIPv4(last)) {
    const [a, b, c, d] = last.split('.').map(Number) as [number, number, number, number];
    const hex = (n: number) => n.toString(16);
    text = `${text.slice(0, lastColon + 1)}${hex((a << 8) | b)}:${hex((c << 8) | d)}`;
  }
  const parse = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const gap = text.indexOf('::');
  if (gap < 0) return parse(text);
  const front = parse(text.slice(0, gap));
  const back = parse(text.slice(gap + 2));
  return [...front, ...Array<number>(8 - front.length - back.length).fill(0), ...back];
}

function v4FromGroups(high: number, low: number): string {
  return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
}

/** The IPv4 address an IPv6 address stands for, if it is one of the forms that embed one. */
export function embeddedIPv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  if (g.length !== 8) return undefined;
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  // ::ffff:a.b.c.d (v4-mapped)
  if (zeros(0, 5) && g[5] === 0xffff) return v4FromGroups(g[6]!, g[7]!);
  // 64:ff9b::a.b.c.d (NAT64 well-known prefix)
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4FromGroups(g[6]!, g[7]!);
  // 64:ff9b:1::/48 (local-use NAT64): the IPv4 part depends on the operator's prefix length.
  // 2002:aabb:ccdd::/48 (6to4)
  if (g[0] === 0x2002) return v4FromGroups(g[1]!, g[2]!);
  return undefined;
}

function classifyV4(address: string): AddressClass {
  for (const [list, range] of V4_LISTS) {
    if (list.check(address, 'ipv4')) return { public: false, range, family: 4 };
  }
  return { public: true, family: 4 };
}

/** Classifies an IP address literal (no brackets); anything that is not one is `invalid`. */
export function classifyAddress(address: string): AddressClass {
  const family = isIP(address);
  if (family === 4) return classifyV4(address);
  if (family !== 6) return { public: false, range: 'invalid' };
  if (address.includes('%')) return { public: false, range: 'link-local', family: 6 };
  const g = ipv6Groups(address);
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) {
    return { public: false, range: 'reserved', family: 6 };
  }
  const v4 = embeddedIPv4(address);
  if (v4 !== undefined) {
    const inner = classifyV4(v4);
    return inner.public ? { public: true, family: 6 } : { ...inner, family: 6 };
  }
  for (const [list, range] of V6_LISTS) {
    if (list.check(address, 'ipv6')) return { public: false, range, family: 6 };
  }
  if (!GLOBAL_UNICAST_V6.check(address, 'ipv6')) {
    return { public: false, range: 'not-global-unicast', family: 6 };
  }
  return { public: true, family: 6 };
}
