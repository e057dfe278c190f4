/**
 * Which addresses and hosts the title fetcher may connect to (SSRF protection).
 *
 * A URL job names an arbitrary address, and the fetcher runs inside our network: without a
 * policy, a job could make it request the cloud metadata service, an admin interface on
 * loopback or anything on the private network. This module holds the pure decisions:
 *
 * - {@link publicAddressesOnly}: the default address policy. It allows only global unicast
 *   addresses and refuses everything else (loopback, private, link-local, CGNAT,
 *   multicast, documentation, reserved, cloud metadata, IPv6 unique-local, ...).
 * - {@link hostAllowlist}: the optional FETCH_ALLOWED_HOSTS restriction on host names.
 *
 * The address policy is enforced on the address actually connected to, by the guarded
 * connector in ./guarded-agent.ts; the host allowlist before every request (redirects
 * included), by ./title-fetcher.ts.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { ErrorCodes } from '@amqp-pipeline/shared';

/** The error code of a refused address or host. */
export const BLOCKED_ADDRESS = ErrorCodes.BLOCKED_ADDRESS;

/**
 * Judges one IP address (the textual form `net.connect` uses: no brackets, maybe a zone id).
 * Returns why the address is refused (a short range name such as `loopback`), or undefined
 * when it may be connected to.
 */
export type AddressPolicy = (address: string) => string | undefined;

/**
 * Raised (by the guarded connector) instead of connecting to an address the policy refuses.
 * fetchTitle turns it into a PipelineError with code {@link BLOCKED_ADDRESS}, not retryable.
 */
export class BlockedAddressError extends Error {
  override readonly name = 'BlockedAddressError';
  readonly code = BLOCKED_ADDRESS;

  /**
   * @param host the host name or IP literal being connected to
   * @param address the refused address (the host itself for an IP literal)
   * @param range why it is refused, as returned by the policy
   */
  constructor(
    readonly host: string,
    readonly address: string,
    readonly range: string,
  ) {
    super(
      host === address
        ? `${address} is not a public address (${range})`
        : `${host} resolves to ${address}, which is not a public address (${range})`,
    );
  }
}

/** The policy of FETCH_ALLOW_PRIVATE=true: every address is allowed. */
export const allowAnyAddress: AddressPolicy = () => undefined;

/**
 * Addresses that ipaddr.js classifies as ordinary unicast but that must not be fetched.
 * They are checked first, so the reason names them precisely.
 */
const CLOUD_METADATA = new Map<string, string>([
  // AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle (also link-local: refused either way).
  ['169.254.169.254', 'cloudMetadata'],
  // Alibaba Cloud (also CGNAT).
  ['100.100.100.200', 'cloudMetadata'],
  // Azure's wire server / host agent: a public-looking address only reachable inside Azure.
  ['168.63.129.16', 'cloudMetadata'],
  // AWS IMDS over IPv6 (also unique-local).
  ['fd00:ec2:0:0:0:0:0:254', 'cloudMetadata'],
]);

/** Global unicast IPv6 (2000::/3): every public IPv6 address lies inside it. */
const IPV6_GLOBAL_UNICAST = ipaddr.IPv6.parseCIDR('2000::/3');
/** The well-known NAT64 prefix (RFC 6052): the last 32 bits are an IPv4 address. */
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR('64:ff9b::/96');

/**
 * The default address policy: only public (global unicast) addresses are allowed.
 *
 * IPv4: anything ipaddr.js does not classify as `unicast` is refused: unspecified
 * (0.0.0.0/8, which Linux connects to the local host), loopback, private (RFC 1918),
 * link-local (169.254/16, the metadata service), CGNAT (100.64/10), multicast, broadcast,
 * reserved (240/4), documentation and benchmarking ranges (192.0.2/24, 198.51.100/24,
 * 203.0.113/24, 198.18/15), IETF protocol assignments (192.0.0/24), AS112, AMT.
 *
 * IPv6: addresses that carry an IPv4 address the host would actually reach are judged by
 * that address: IPv4-mapped (::ffff:0:0/96) and well-known NAT64 (64:ff9b::/96). Everything
 * else must be plain unicast inside 2000::/3, so loopback, unspecified, unique-local
 * (fc00::/7), link-local (fe80::/10), site-local, multicast, IPv4-compatible (::/96),
 * local-use NAT64 (64:ff9b:1::/48), discard-only, documentation (2001:db8::/32, 3fff::/20),
 * benchmarking, ORCHID and the transition mechanisms 6to4 (2002::/16) and Teredo
 * (2001::/32) are refused. (6to4 and Teredo tunnel to an embedded IPv4 address; no real
 * web server is reachable only through them, so they are refused outright rather than
 * judged by the embedded address.)
 *
 * Anything that does not parse as an IP address is refused (fail closed).
 */
export const publicAddressesOnly: AddressPolicy = (address) => {
  const text = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  // isIP is strict (dotted-quad IPv4 only; IPv6 with an optional zone id), unlike
  // ipaddr.js, which also reads forms such as `0x7f.1`.
  if (isIP(text) === 0) return 'notAnIpAddress';
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.parse(text);
  } catch {
    return 'notAnIpAddress';
  }
  return parsed.kind() === 'ipv4' ? judgeIPv4(parsed as ipaddr.IPv4) : judgeIPv6(parsed as ipaddr.IPv6);
};

function judgeIPv4(address: ipaddr.IPv4): string | undefined {
  const special = CLOUD_METADATA.get(address.toString());
  if (special !== undefined) return special;
  const range = address.range();
  return range === 'unicast' ? undefined : range;
}

function judgeIPv6(address: ipaddr.IPv6): string | undefined {
  // Embedded IPv4 addresses that the connection really goes to.
  if (address.isIPv4MappedAddress()) return prefixed('ipv4Mapped', judgeIPv4(address.toIPv4Address()));
  if (address.match(NAT64_WELL_KNOWN)) {
    const [, , , , , , high = 0, low = 0] = address.parts;
    const embedded = new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]);
    return prefixed('nat64', judgeIPv4(embedded));
  }

  const special = CLOUD_METADATA.get(address.toNormalizedString());
  if (special !== undefined) return special;
  const range = address.range() as string;
  if (range !== 'unicast') return range;
  // ipaddr.js calls everything it has no name for `unicast`, including the unassigned
  // space outside 2000::/3 and IPv4-compatible addresses (::a.b.c.d).
  return address.match(IPV6_GLOBAL_UNICAST) ? undefined : 'notGlobalUnicast';
}

/** `ipv4Mapped:loopback` for a refused embedded address, undefined for an allowed one. */
function prefixed(prefix: string, reason: string | undefined): string | undefined {
  return reason === undefined ? undefined : `${prefix}:${reason}`;
}

// ---------------------------------------------------------------------------------------
// Host allowlist
// ---------------------------------------------------------------------------------------

/** Lower case, no brackets around IPv6 literals, no trailing dot (`Example.COM.` = `example.com`). */
function canonicalHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

/**
 * A predicate for FETCH_ALLOWED_HOSTS: a URL host name is allowed when it equals a listed
 * host or is a subdomain of one (`example.com` allows `www.example.com`, not
 * `badexample.com`). An empty list allows every host. IP literals match only themselves.
 *
 * This restricts names only; the address policy still applies to whatever they resolve to.
 */
export function hostAllowlist(allowedHosts: readonly string[]): (hostname: string) => boolean {
  const allowed = allowedHosts.map(canonicalHost).filter((h) => h !== '');
  if (allowed.length === 0) return () => true;
  return (hostname) => {
    const host = canonicalHost(hostname);
    return allowed.some((entry) => host === entry || (isIP(host) === 0 && host.endsWith(`.${entry}`)));
  };
}
