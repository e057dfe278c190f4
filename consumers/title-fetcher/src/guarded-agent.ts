/**
 * Enforcing the address policy on the address actually connected to.
 *
 * Checking a URL's host name before the request is not enough: the name is resolved again
 * when connecting, and a hostile DNS server can answer with a public address for the check
 * and a private one for the connection (DNS rebinding). So the check lives in the one place
 * every connection passes through, undici's connector:
 *
 * - host names are resolved by {@link guardedLookup}, which `net.connect` / `tls.connect`
 *   call as their `lookup`: the addresses it returns are exactly the ones the socket
 *   connects to, and it refuses to return any if one of them is blocked;
 * - IP literals never reach `lookup` (net.connect skips resolving them), so
 *   {@link guardedConnector} judges them itself before connecting.
 *
 * Either way a refused address fails the request with a BlockedAddressError and no
 * connection is attempted. Since every request made through an Agent built on this
 * connector passes the check, so does every redirect hop.
 */
import type { LookupAddress, LookupOptions } from 'node:dns';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { LookupFunction } from 'node:net';
import { buildConnector } from 'undici';
import { BlockedAddressError } from './address-policy.js';
import type { AddressPolicy } from './address-policy.js';

/**
 * Resolves a host name to all of its addresses (dns.lookup with `all: true`). Replaceable so
 * tests can map made-up names to loopback without asking a DNS server.
 */
export type Resolver = (hostname: string, options: Omit<LookupOptions, 'all'>) => Promise<LookupAddress[]>;

/** The operating system's resolver (getaddrinfo, as `net.connect` uses by default). */
export const systemResolver: Resolver = (hostname, options) => dnsLookup(hostname, { ...options, all: true });

/**
 * A `net.connect` lookup that resolves with `resolver` and fails with a BlockedAddressError
 * if any address of the host is refused by `policy`. (Refusing the whole host, rather than
 * dropping its bad addresses, is deliberate: a public name that also resolves to an
 * internal address is misconfigured at best and an attack at worst.)
 */
export function guardedLookup(policy: AddressPolicy, resolver: Resolver = systemResolver): LookupFunction {
  return (hostname, options, callback) => {
    const { all = false, ...rest } = options;
    resolver(hostname, rest).then(
      (addresses) => {
        const outcome = judge(hostname, addresses, policy);
        // Called outside the promise chain, so an exception in net's callback is not
        // swallowed as a rejection (the same as with dns.lookup's own callback).
        process.nextTick(() => {
          if (outcome instanceof Error) callback(outcome, all ? [] : '');
          else if (all) callback(null, outcome);
          else callback(null, outcome[0]!.address, outcome[0]!.family);
        });
      },
      (err: NodeJS.ErrnoException) => process.nextTick(() => callback(err, all ? [] : '')),
    );
  };
}

function judge(hostname: string, addresses: LookupAddress[], policy: AddressPolicy): LookupAddress[] | Error {
  if (addresses.length === 0) {
    return Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
  }
  for (const { address } of addresses) {
    const range = policy(address);
    if (range !== undefined) return new BlockedAddressError(hostname, address, range);
  }
  return addresses;
}

export interface GuardedConnectorOptions {
  /** Judges every address before it is connected to. */
  policy: AddressPolicy;
  /** Resolves host names; the system resolver by default. */
  resolver?: Resolver;
  /** Connect timeout in ms (undici's default is 10 s). */
  timeoutMs?: number;
}

/**
 * An undici connector (the Agent's `connect` option) that refuses blocked addresses:
 * IP literals before connecting, host names through {@link guardedLookup}. TLS and
 * everything else is undici's own connector.
 */
export function guardedConnector(options: GuardedConnectorOptions): buildConnector.connector {
  const { policy, resolver = systemResolver, timeoutMs } = options;
  const connect = buildConnector({
    lookup: guardedLookup(policy, resolver),
    ...(timeoutMs !== undefined && { timeout: timeoutMs }),
  });
  return (target, callback) => {
    // undici strips the brackets of IPv6 literals; strip them anyway, to be sure.
    const { hostname } = target;
    const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
    if (isIP(host) !== 0) {
      const range = policy(host);
      if (range !== undefined) {
        // Asynchronously, as a real connection attempt would fail.
        queueMicrotask(() => callback(new BlockedAddressError(host, host, range), null));
        return;
      }
    }
    connect(target, callback);
  };
}
