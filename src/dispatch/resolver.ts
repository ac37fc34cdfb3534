import { lookup as systemLookup, promises as dnsPromises, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';

/** Answers every address a host name has (of one family, or of both with 0). */
export type Resolve = (hostname: string, family: 0 | 4 | 6) => Promise<LookupAddress[]>;

/**
 * HERALD_DNS_SERVERS: `ip`, `ip:port` or `[ipv6]:port`, comma-separated. Checked here so a
 * typo stops Herald at start, naming the setting, rather than failing every delivery.
 */
export function parseDnsServers(text: string): string[] {
  const out: string[] = [];
  for (const item of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    // A bare IPv6 address has colons of its own: only the bracketed form carries a port.
    const m = isIP(item) === 6 ? null : /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(item) ?? /^([^:]+)(?::(\d{1,5}))?$/.exec(item);
    const ip = m ? m[1] : item;
    const port = m?.[2] === undefined ? 53 : Number(m[2]);
    if (!ip || isIP(ip) === 0 || port < 1 || port > 65_535) {
      throw new Error(`HERALD_DNS_SERVERS: "${item}" must be an IP address, ip:port or [ipv6]:port`);
    }
    out.push(isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`);
  }
  return out;
}

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'ENONAME', 'NOTFOUND', 'NODATA']);

/** An error the Sender classifies as `dns`: not found, or the servers did not help (try later). */
function dnsError(hostname: string, codes: string[]): Error {
  const code = codes.every((c) => NOT_FOUND.has(c)) ? 'ENOTFOUND' : 'EAI_AGAIN';
  return Object.assign(new Error(`${hostname} did not resolve (${[...new Set(codes)].join(', ')})`), { code, hostname });
}

/**
 * With no servers, the system's resolver (getaddrinfo: /etc/hosts, then DNS). With servers,
 * A and AAAA queries to those only, so a test or an operator decides what every name
 * resolves to, and the same answers reach the guard at registration and at every connect.
 */
export function makeResolve(servers: string[]): Resolve {
  if (servers.length === 0) {
    return (hostname, family) => new Promise((resolve, reject) =>
      systemLookup(hostname, { family, all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))));
  }
  // Short tries: a delivery's connect timeout also has to cover the lookup.
  const r = new dnsPromises.Resolver({ timeout: 1500, tries: 2 });
  r.setServers(servers);
  return async (hostname, family) => {
    const literal = isIP(hostname);
    if (literal) return family === 0 || family === literal ? [{ address: hostname, family: literal }] : Promise.reject(dnsError(hostname, ['ENODATA']));
    const asked: [4 | 6, Promise<string[]>][] = [];
    if (family !== 6) asked.push([4, r.resolve4(hostname)]);
    if (family !== 4) asked.push([6, r.resolve6(hostname)]);
    const settled = await Promise.allSettled(asked.map(([, p]) => p));
    const out: LookupAddress[] = [];
    const codes: string[] = [];
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') for (const address of s.value) out.push({ address, family: asked[i]![0] });
      else codes.push(String((s.reason as { code?: string }).code ?? 'ESERVFAIL'));
    });
    // One family answering is enough; a failure of the other cannot hide a refused address, since what answered is all that is used.
    if (out.length === 0) throw dnsError(hostname, codes.length ? codes : ['ENODATA']);
    return out;
  };
}
