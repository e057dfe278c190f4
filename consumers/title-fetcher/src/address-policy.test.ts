// Pure decisions only: nothing here opens a connection or resolves a name.
import { describe, expect, it } from 'vitest';
import { allowAnyAddress, hostAllowlist, publicAddressesOnly } from './address-policy.js';

describe('publicAddressesOnly: IPv4', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'cloudMetadata'],
    ['169.254.1.1', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.127.255.255', 'carrierGradeNat'],
    ['100.100.100.200', 'cloudMetadata'],
    ['168.63.129.16', 'cloudMetadata'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.0.170', 'reserved'],
    ['192.0.2.1', 'reserved'],
    ['198.51.100.7', 'reserved'],
    ['203.0.113.9', 'reserved'],
    ['198.18.0.1', 'reserved'],
  ])('when the address is %s, then it is refused as %s', (address, range) => {
    expect(publicAddressesOnly(address)).toBe(range);
  });

  it.each(['93.184.216.34', '8.8.8.8', '1.1.1.1', '172.32.0.1', '100.128.0.1', '192.169.0.1', '11.0.0.1'])(
    'when the public address is %s, then it is allowed',
    (address) => {
      expect(publicAddressesOnly(address)).toBeUndefined();
    },
  );
});

describe('publicAddressesOnly: IPv6', () => {
  it.each([
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['::', 'unspecified'],
    ['fc00::1', 'uniqueLocal'],
    ['fd12:3456:789a::1', 'uniqueLocal'],
    ['fd00:ec2::254', 'cloudMetadata'],
    ['fe80::1', 'linkLocal'],
    ['fe80::1%eth0', 'linkLocal'],
    ['fec0::1', 'deprecatedSiteLocal'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'reserved'],
    ['3fff::1', 'reserved'],
    ['100::1', 'discard'],
    ['2002:7f00:1::1', '6to4'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'teredo'],
    ['64:ff9b:1::a00:1', 'rfc6052'],
    // IPv4-compatible (deprecated) and unassigned space outside 2000::/3.
    ['::7f00:1', 'notGlobalUnicast'],
    ['4000::1', 'notGlobalUnicast'],
  ])('when the address is %s, then it is refused as %s', (address, range) => {
    expect(publicAddressesOnly(address)).toBe(range);
  });

  it.each([
    ['::ffff:127.0.0.1', 'ipv4Mapped:loopback'],
    ['::ffff:7f00:1', 'ipv4Mapped:loopback'],
    ['::ffff:10.1.2.3', 'ipv4Mapped:private'],
    ['::ffff:169.254.169.254', 'ipv4Mapped:cloudMetadata'],
    ['64:ff9b::127.0.0.1', 'nat64:loopback'],
    ['64:ff9b::a9fe:a9fe', 'nat64:cloudMetadata'],
  ])('when %s embeds a refused IPv4 address, then it is refused as %s', (address, range) => {
    expect(publicAddressesOnly(address)).toBe(range);
  });

  it.each(['2606:4700:4700::1111', '2a00:1450:4001:82a::200e', '::ffff:93.184.216.34', '64:ff9b::8.8.8.8'])(
    'when the public address is %s, then it is allowed',
    (address) => {
      expect(publicAddressesOnly(address)).toBeUndefined();
    },
  );
});

describe('publicAddressesOnly: not addresses', () => {
  it.each(['localhost', 'example.com', '', '0x7f.1', '2130706433', '127.1', '1.2.3.4.5', '[fe80::1'])(
    'when %j is not an IP address in canonical form, then it is refused',
    (text) => {
      expect(publicAddressesOnly(text)).toBe('notAnIpAddress');
    },
  );
});

describe('allowAnyAddress', () => {
  it('when private addresses are allowed, then every address passes', () => {
    for (const address of ['127.0.0.1', '10.0.0.1', '169.254.169.254', '::1', 'fc00::1']) {
      expect(allowAnyAddress(address)).toBeUndefined();
    }
  });
});

describe('hostAllowlist', () => {
  it('when the list is empty, then every host is allowed', () => {
    const allowed = hostAllowlist([]);
    expect(allowed('example.com')).toBe(true);
    expect(allowed('127.0.0.1')).toBe(true);
  });

  it('when a host is listed, then it and its subdomains are allowed, and look-alikes are not', () => {
    const allowed = hostAllowlist(['example.com', 'news.example.org']);
    expect(allowed('example.com')).toBe(true);
    expect(allowed('www.example.com')).toBe(true);
    expect(allowed('a.b.example.com')).toBe(true);
    expect(allowed('news.example.org')).toBe(true);
    expect(allowed('www.news.example.org')).toBe(true);
    expect(allowed('example.org')).toBe(false);
    expect(allowed('badexample.com')).toBe(false);
    expect(allowed('example.com.evil.net')).toBe(false);
    expect(allowed('com')).toBe(false);
  });

  it('when names differ only in case, brackets or a trailing dot, then they match', () => {
    const allowed = hostAllowlist(['Example.COM.', '[::1]', ' 127.0.0.1 ']);
    expect(allowed('example.com')).toBe(true);
    expect(allowed('WWW.example.com.')).toBe(true);
    expect(allowed('[::1]')).toBe(true);
    expect(allowed('::1')).toBe(true);
    expect(allowed('127.0.0.1')).toBe(true);
  });

  it('when an IP literal is listed, then it matches only itself', () => {
    const allowed = hostAllowlist(['0.0.1']);
    expect(allowed('10.0.0.1')).toBe(false);
    expect(hostAllowlist(['127.0.0.1'])('127.0.0.2')).toBe(false);
  });
});
