// A tiny authoritative DNS server on loopback UDP for tests: it answers A and AAAA queries
// from a table the test changes as it goes (TTL 0), so a name can resolve one way when a
// subscription is registered and another when Herald connects. Names it does not hold get
// NXDOMAIN; a name it holds with no record of the asked type gets an empty answer.
import { createSocket, type Socket } from 'node:dgram';
import { isIP } from 'node:net';

export interface Records { A?: string[]; AAAA?: string[] }

const TYPE_A = 1;
const TYPE_AAAA = 28;

/** The 16 bytes of an IPv6 address, dotted IPv4 tail included. */
function ipv6Bytes(ip: string): Buffer {
  let text = ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, -dotted[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, null];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === null ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function rdata(type: number, ip: string): Buffer {
  return type === TYPE_A ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip);
}

export class DnsServer {
  private readonly socket: Socket = createSocket('udp4');
  private readonly table = new Map<string, Records>();
  /** Every question asked, in order: `name type` (type A or AAAA, else its number). */
  readonly queries: string[] = [];
  /** `127.0.0.1:port`, the form HERALD_DNS_SERVERS takes. */
  address = '';

  /** Sets (or with undefined, removes) what a name resolves to. */
  set(name: string, records: Records | undefined): this {
    const key = name.toLowerCase().replace(/\.$/, '');
    for (const ip of [...(records?.A ?? []), ...(records?.AAAA ?? [])]) {
      if (isIP(ip) === 0) throw new Error(`${ip} is not an IP address`);
    }
    if (records) this.table.set(key, records);
    else this.table.delete(key);
    return this;
  }

  async start(): Promise<this> {
    this.socket.on('message', (msg, from) => {
      const reply = this.answer(msg);
      if (reply) this.socket.send(reply, from.port, from.address);
    });
    await new Promise<void>((ok) => this.socket.bind(0, '127.0.0.1', ok));
    this.address = `127.0.0.1:${this.socket.address().port}`;
    return this;
  }

  stop(): Promise<void> {
    return new Promise((ok) => this.socket.close(() => ok()));
  }

  private answer(msg: Buffer): Buffer | null {
    if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return null;
    // The question: labels up to the root, then type and class.
    const labels: string[] = [];
    let at = 12;
    while (at < msg.length && msg[at] !== 0) {
      const len = msg[at]!;
      if (len > 63 || at + 1 + len > msg.length) return null;
      labels.push(msg.subarray(at + 1, at + 1 + len).toString('latin1'));
      at += 1 + len;
    }
    if (at + 5 > msg.length) return null;
    const qtype = msg.readUInt16BE(at + 1);
    const questionEnd = at + 5;
    const name = labels.join('.').toLowerCase();
    this.queries.push(`${name} ${qtype === TYPE_A ? 'A' : qtype === TYPE_AAAA ? 'AAAA' : qtype}`);
    const records = this.table.get(name);
    const ips = !records ? [] : qtype === TYPE_A ? records.A ?? [] : qtype === TYPE_AAAA ? records.AAAA ?? [] : [];
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0);
    // A response, authoritative, the client's recursion-desired bit echoed; NXDOMAIN for names not held.
    header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | (records ? 0 : 3), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(ips.length, 6);
    const answers = ips.map((ip) => {
      const data = rdata(qtype, ip);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(qtype, 2);
      rr.writeUInt16BE(1, 4); // class IN
      rr.writeUInt32BE(0, 6); // TTL 0: nothing may keep the answer
      rr.writeUInt16BE(data.length, 10);
      return Buffer.concat([rr, data]);
    });
    return Buffer.concat([header, msg.subarray(12, questionEnd), ...answers]);
  }
}
