// AddressGuard decides which addresses a delivery may reach: with no allow-list, nothing
// but the public internet. These are unit tests of the guard, plus an end-to-end check that
// the Sender really refuses to connect (a real loopback receiver must get nothing).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AddressGuard, parseCidr, parseCidrList } from '../src/dispatch/addressGuard.ts';
import { Sender } from '../src/dispatch/sender.ts';
import { Receiver } from './helpers/receiver.ts';

const REFUSED = [
  '127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0',
  '224.0.0.1', '255.255.255.255', '198.18.0.1',
  '::1', '::', 'fe80::1', 'fc00::1', 'ff02::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:10.0.0.1', '64:ff9b::a00:1',
  // Outside 2000::/3 without being listed: IPv4-translated (SIIT) and SRv6 SIDs; then IPv6 documentation, Azure's WireServer.
  '::ffff:0:7f00:1', '::ffff:0:a9fe:a9fe', '5f00::1', '3fff::1', '168.63.129.16', '::ffff:168.63.129.16',
];
const ALLOWED = ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2a00:1450:4001::1'];

/** Calls guard.lookup and answers what it called back with. */
function lookup(guard: AddressGuard, host: string, options: unknown): Promise<{ err: (Error & { code?: string }) | null; args: unknown[] }> {
  return new Promise((resolve) => guard.lookup(host, options, (err: Error | null, ...args: unknown[]) => resolve({ err, args })));
}

describe('AddressGuard.refusal with no allow-list', () => {
  const guard = new AddressGuard([]);

  for (const ip of REFUSED) {
    test(`refuses ${ip}`, () => {
      const why = guard.refusal(ip);
      assert.equal(typeof why, 'string', `${ip} must be refused`);
      assert.ok(why!.includes(ip), `the reason names the address: ${why}`);
    });
  }

  for (const ip of ALLOWED) {
    test(`allows the public address ${ip}`, () => {
      assert.equal(guard.refusal(ip), null);
    });
  }

  test('a string that is not an IP address is refused, not allowed', () => {
    assert.match(guard.refusal('example.com') ?? '', /not an IP address/);
    assert.match(guard.refusal('') ?? '', /not an IP address/);
  });
});

describe('AddressGuard.refusal with the allow-list 127.0.0.0/8', () => {
  const guard = new AddressGuard(parseCidrList('127.0.0.0/8'));

  test('allows 127.0.0.1 and its IPv4-mapped IPv6 form', () => {
    assert.equal(guard.refusal('127.0.0.1'), null);
    assert.equal(guard.refusal('127.255.0.9'), null);
    assert.equal(guard.refusal('::ffff:127.0.0.1'), null);
  });

  test('an allow-list of one address lets only that one through, in either spelling', () => {
    const one = new AddressGuard(parseCidrList('127.0.0.2/32'));
    assert.equal(one.refusal('127.0.0.2'), null);
    assert.equal(one.refusal('::ffff:127.0.0.2'), null);
    assert.equal(typeof one.refusal('127.0.0.3'), 'string');
    assert.equal(typeof one.refusal('::ffff:7f00:3'), 'string');
    assert.equal(typeof one.refusal('::ffff:0:7f00:2'), 'string', 'the IPv4-translated form is not the mapped one');
  });

  test('still refuses other private ranges and IPv6 loopback', () => {
    assert.equal(typeof guard.refusal('10.0.0.1'), 'string');
    assert.equal(typeof guard.refusal('192.168.1.1'), 'string');
    assert.equal(typeof guard.refusal('::ffff:10.0.0.1'), 'string');
    assert.equal(typeof guard.refusal('::1'), 'string');
  });
});

describe('parseCidr / parseCidrList', () => {
  test('parses a list, trimming blanks', () => {
    assert.deepEqual(parseCidrList(' 10.0.0.0/8 , ,::1 '), [
      { address: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { address: '::1', prefix: 128, family: 'ipv6' },
    ]);
    assert.deepEqual(parseCidrList(''), []);
    assert.deepEqual(parseCidr('192.168.0.0/16'), { address: '192.168.0.0', prefix: 16, family: 'ipv4' });
  });

  test('a bad prefix length throws naming HERALD_ALLOW_PRIVATE_NETWORKS', () => {
    assert.throws(() => parseCidrList('10.0.0.0/33'), (err: Error) => /HERALD_ALLOW_PRIVATE_NETWORKS/.test(err.message) && /10\.0\.0\.0\/33/.test(err.message));
  });

  test('other malformed entries throw naming HERALD_ALLOW_PRIVATE_NETWORKS', () => {
    for (const bad of ['10.0.0.0/-1', '10.0.0.0/8x', 'example.com', '::1/129', '10.0.0.0/8,300.0.0.0/8', '10.0.0.0/8/8']) {
      assert.throws(() => parseCidrList(bad), /HERALD_ALLOW_PRIVATE_NETWORKS/, bad);
    }
  });

  test("an empty prefix ('10.0.0.0/') throws; it must not be read as /0, which would allow every IPv4 address", () => {
    assert.throws(() => parseCidrList('10.0.0.0/'), /HERALD_ALLOW_PRIVATE_NETWORKS/);
    assert.throws(() => parseCidrList('127.0.0.0/8, ::1/'), /HERALD_ALLOW_PRIVATE_NETWORKS/);
  });
});

describe('AddressGuard.checkUrl', () => {
  const guard = new AddressGuard([]);
  const allowing = new AddressGuard(parseCidrList('127.0.0.0/8'));

  const refusedUrls: [string, RegExp][] = [
    ['ftp://x', /absolute http\(s\) URL/],
    ['not a url', /absolute http\(s\) URL/],
    ['http://user:pw@example.com', /user name or password/],
    ['http://127.0.0.1:9/x', /127\.0\.0\.1/],
    ['http://[::1]/', /::1/],
    ['http://localhost/', /resolves to .*(127\.0\.0\.1|::1)/],
    ['http://0x7f000001/', /127\.0\.0\.1/],
    ['http://[::ffff:169.254.169.254]/', /private, loopback or reserved/],
  ];
  for (const [url, why] of refusedUrls) {
    test(`refuses ${url} with a message`, async () => {
      const r = await guard.checkUrl(url);
      assert.equal(typeof r, 'string', `${url} must be refused`);
      assert.match(r!, why);
    });
  }

  test('with the allow-list, loopback URLs are accepted but other refusals stand', async () => {
    assert.equal(await allowing.checkUrl('http://127.0.0.1:9/x'), null);
    assert.equal(await allowing.checkUrl('https://[::ffff:127.0.0.1]:8443/'), null);
    assert.match((await allowing.checkUrl('http://10.0.0.1/')) ?? '', /10\.0\.0\.1/);
    assert.match((await allowing.checkUrl('ftp://127.0.0.1/')) ?? '', /absolute http\(s\) URL/);
    assert.match((await allowing.checkUrl('http://u:p@127.0.0.1/')) ?? '', /user name or password/);
  });

  test('a public literal address is accepted', async () => {
    assert.equal(await guard.checkUrl('https://[2606:4700:4700::1111]/hook'), null);
    assert.equal(await guard.checkUrl('https://8.8.8.8/hook'), null);
  });
});

describe('AddressGuard.lookup', () => {
  test("with no allow-list, 'localhost' calls back EHERALDREFUSED (all: true)", async () => {
    const { err, args } = await lookup(new AddressGuard([]), 'localhost', { all: true });
    assert.ok(err, 'an error');
    assert.equal(err.code, 'EHERALDREFUSED');
    assert.match(err.message, /localhost/);
    assert.deepEqual(args, []);
  });

  test("with no allow-list, 'localhost' calls back EHERALDREFUSED (single address form)", async () => {
    const { err } = await lookup(new AddressGuard([]), 'localhost', {});
    assert.equal(err?.code, 'EHERALDREFUSED');
  });

  // ::1/128 is allowed too, so the test holds where localhost also resolves to ::1.
  test("with an allow-list, 'localhost' resolves (all: true answers the list)", async () => {
    const { err, args } = await lookup(new AddressGuard(parseCidrList('127.0.0.0/8,::1/128')), 'localhost', { all: true });
    assert.equal(err, null);
    const list = args[0] as { address: string; family: number }[];
    assert.ok(Array.isArray(list) && list.length > 0);
    assert.ok(list.every((a) => a.address === '::1' || a.address.startsWith('127.')), JSON.stringify(list));
  });

  test("with an allow-list, 'localhost' resolves (single form answers address and family)", async () => {
    const { err, args } = await lookup(new AddressGuard(parseCidrList('127.0.0.0/8,::1/128')), 'localhost', { family: 4 });
    assert.equal(err, null);
    assert.equal(args[0], '127.0.0.1');
    assert.equal(args[1], 4);
  });

  test('a name that does not resolve calls back the resolver error, not a refusal', async () => {
    const { err } = await lookup(new AddressGuard([]), 'no-such-host.invalid', { all: true });
    assert.ok(err);
    assert.notEqual(err.code, 'EHERALDREFUSED');
  });

  test('a public address passes through the lookup', async () => {
    const { err, args } = await lookup(new AddressGuard([]), '8.8.8.8', { all: true });
    assert.equal(err, null, err?.message);
    assert.deepEqual(args[0], [{ address: '8.8.8.8', family: 4 }]);
  });
});

describe('Sender end to end: the guard really keeps deliveries off private addresses', () => {
  let receiver: Receiver;
  let port: number;
  const strict = new Sender(new AddressGuard([]), 3000, 2);
  const allowing = new Sender(new AddressGuard(parseCidrList('127.0.0.0/8')), 3000, 2);

  before(async () => {
    receiver = await new Receiver().start();
    port = Number(new URL(receiver.url).port);
  });

  after(async () => {
    await strict.close();
    await allowing.close();
    await receiver.stop();
  });

  test('POST to http://localhost:<port>/ is refused_address and the receiver gets nothing', async () => {
    const r = await strict.post(`http://localhost:${port}/`, { 'content-type': 'application/json' }, '{"a":1}');
    assert.equal(r.errorKind, 'refused_address', JSON.stringify(r));
    assert.equal(r.statusCode, null);
    assert.match(r.error ?? '', /localhost/);
    assert.equal(receiver.received.length, 0);
  });

  test('POST to http://127.0.0.1:<port>/ is refused_address and the receiver gets nothing', async () => {
    const r = await strict.post(`http://127.0.0.1:${port}/x`, { 'content-type': 'application/json' }, '{"a":1}');
    assert.equal(r.errorKind, 'refused_address', JSON.stringify(r));
    assert.equal(r.statusCode, null);
    assert.match(r.error ?? '', /127\.0\.0\.1/);
    assert.equal(receiver.received.length, 0);
  });

  test('POST to the IPv4-mapped form http://[::ffff:127.0.0.1]:<port>/ is refused too', async () => {
    const r = await strict.post(`http://[::ffff:127.0.0.1]:${port}/`, {}, 'x');
    assert.equal(r.errorKind, 'refused_address', JSON.stringify(r));
    assert.equal(receiver.received.length, 0);
  });

  test('with the allow-list the same POST succeeds with 200 and the receiver gets the body', async () => {
    const r = await allowing.post(`http://127.0.0.1:${port}/hook?x=1`, { 'content-type': 'application/json' }, '{"a":1}');
    assert.equal(r.errorKind, null, JSON.stringify(r));
    assert.equal(r.statusCode, 200);
    assert.equal(r.responseBody, 'ok');
    assert.equal(receiver.received.length, 1);
    assert.equal(receiver.received[0]!.path, '/hook?x=1');
    assert.equal(receiver.received[0]!.body, '{"a":1}');
  });

  test('with the allow-list, localhost (resolved through the guard) reaches the receiver', async () => {
    const sender = new Sender(new AddressGuard(parseCidrList('127.0.0.0/8,::1/128')), 3000, 1);
    try {
      const r = await sender.post(`http://localhost:${port}/via-name`, {}, 'hi');
      // Where localhost resolves to ::1 first, the IPv4-only receiver may not be reached; that is not a refusal.
      assert.notEqual(r.errorKind, 'refused_address', JSON.stringify(r));
      if (r.statusCode === 200) assert.ok(receiver.received.some((x) => x.path === '/via-name'));
    } finally {
      await sender.close();
    }
  });
});
