import type { LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { makeResolve, type Resolve } from './resolver.ts';

export interface Cidr { address: string; prefix: number; family: 'ipv4' | 'ipv6' }

// Every range that is not the public internet: private, loopback, link-local, CGNAT,
// multicast, documentation, benchmarking, reserved, and the IPv6 forms that embed IPv4.
const REFUSED_V4 = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
  '192.0.0.0/24', '192.0.2.0/24', '192.88.99.0/24', '192.168.0.0/16', '198.18.0.0/15',
  '198.51.100.0/24', '203.0.113.0/24', '224.0.0.0/4', '240.0.0.0/4',
  // Public by its number, but inside Azure it is the platform's WireServer (agent and extension settings).
  '168.63.129.16/32',
];
const REFUSED_V6 = [
  // No '::ffff:0:0/96': BlockList would match every plain IPv4 address against it; it
  // already matches IPv4-mapped forms against the IPv4 rules above.
  '::/96', '64:ff9b::/96', '64:ff9b:1::/48', '100::/64', '2001::/23', '2001:db8::/32',
  '2002::/16', 'fc00::/7', 'fe80::/10', 'fec0::/10', 'ff00::/8', '3fff::/20',
];
// Outside these two, no IPv6 address is on the public internet: ::ffff:0:0:0/96 (IPv4-translated),
// 5f00::/16 and whatever IANA reserves next are refused without being listed one by one.
const GLOBAL_V6 = '2000::/3';
const MAPPED_V6 = '::ffff:0:0/96';

export function parseCidr(text: string): Cidr {
  const t = text.trim();
  const slash = t.indexOf('/');
  const address = slash < 0 ? t : t.slice(0, slash);
  const v = isIP(address);
  if (v === 0) throw new Error(`"${t}" is not an IP address or CIDR`);
  const max = v === 4 ? 32 : 128;
  const bits = t.slice(slash + 1);
  if (slash >= 0 && !/^\d{1,3}$/.test(bits)) throw new Error(`"${t}" has a bad prefix length`);
  const prefix = slash < 0 ? max : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new Error(`"${t}" has a bad prefix length`);
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

export function parseCidrList(text: string): Cidr[] {
  try {
    return text.split(',').map((s) => s.trim()).filter(Boolean).map(parseCidr);
  } catch (err) {
    throw new Error(`HERALD_ALLOW_PRIVATE_NETWORKS: ${(err as Error).message}`);
  }
}

function listOf(cidrs: Cidr[]): BlockList {
  const b = new BlockList();
  for (const c of cidrs) b.addSubnet(c.address, c.prefix, c.family);
  return b;
}

export class RefusedAddressError extends Error {
  readonly code = 'EHERALDREFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'RefusedAddressError';
  }
}

/** Decides which addresses a delivery may connect to. */
export class AddressGuard {
  private readonly refused = listOf([...REFUSED_V4, ...REFUSED_V6].map(parseCidr));
  private readonly allowed: BlockList;
  private readonly globalV6 = listOf([parseCidr(GLOBAL_V6)]);
  // Only ever checked with IPv6 addresses here, so BlockList's IPv4 mapping cannot widen it.
  private readonly mappedV6 = listOf([parseCidr(MAPPED_V6)]);
  private readonly resolve: Resolve;

  /** `dnsServers` empty: names resolve through the system (getaddrinfo); else through those servers only. */
  constructor(allow: Cidr[], dnsServers: string[] = []) {
    this.allowed = listOf(allow);
    this.resolve = makeResolve(dnsServers);
  }

  /** Null when the address may be used, else why not. BlockList also matches IPv4-mapped IPv6 forms. */
  refusal(ip: string): string | null {
    const v = isIP(ip);
    if (v === 0) return `${ip} is not an IP address`;
    const family = v === 4 ? 'ipv4' : 'ipv6';
    if (this.allowed.check(ip, family)) return null;
    if (this.refused.check(ip, family)) return `${ip} is a private, loopback or reserved address`;
    if (family === 'ipv6' && !this.mappedV6.check(ip, 'ipv6') && !this.globalV6.check(ip, 'ipv6')) {
      return `${ip} is a reserved address (outside 2000::/3, the IPv6 global unicast range)`;
    }
    if (family === 'ipv6') {
      // IPv4-compatible and other embeddings BlockList may not map: look at the last 32 bits too.
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
      if (mapped && this.refusal(mapped[1]!) !== null) return `${ip} maps to a private, loopback or reserved address`;
    }
    return null;
  }

  /**
   * Checks a subscription URL when it is registered. A name that does not resolve now is
   * accepted (it is checked again at every connection); a name that resolves to a refused
   * address is not.
   */
  async checkUrl(raw: string): Promise<string | null> {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      return 'must be an absolute http(s) URL';
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'must be an absolute http(s) URL';
    if (u.username || u.password) return 'must not carry a user name or password';
    const host = u.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const r = this.refusal(host);
      return r ? `points to ${r}` : null;
    }
    const addrs = await this.resolve(host, 0).catch((): LookupAddress[] => []);
    for (const a of addrs) {
      const r = this.refusal(a.address);
      if (r) return `resolves to ${r}`;
    }
    return null;
  }

  /** A dns.lookup for net.connect that refuses names resolving into refused ranges. */
  lookup = (hostname: string, options: unknown, callback: (...args: any[]) => void): void => {
    const opts = (typeof options === 'object' && options !== null ? options : {}) as { all?: boolean; family?: number };
    const family = opts.family === 4 || opts.family === 6 ? opts.family : 0;
    // The callback runs on a later tick, as dns.lookup's does: what it throws is not a rejection of ours.
    const answer = (...args: unknown[]) => process.nextTick(() => callback(...args));
    this.resolve(hostname, family).then((addresses) => {
      for (const a of addresses) {
        const r = this.refusal(a.address);
        if (r) return answer(new RefusedAddressError(`${hostname} resolves to ${r}`));
      }
      if (opts.all) return answer(null, addresses);
      const first = addresses[0]!;
      answer(null, first.address, first.family);
    }, (err: unknown) => answer(err));
  };
}
