// SSRF beyond the plain private ranges: DNS rebinding through a resolver Herald takes from
// HERALD_DNS_SERVERS, the odd spellings of loopback and of the cloud metadata addresses, at
// registration in every dialect and at connect time, and redirects that are never followed.
//
// Everything stays on loopback. 127.0.0.2 stands for "a public address" (it is the only one
// HERALD_ALLOW_PRIVATE_NETWORKS lets through) and 127.0.0.3 for "a private one" (refused,
// as every other loopback address is). A receiver listens on 127.0.0.3, 127.0.0.1 and ::1 at
// the same port as the good one on 127.0.0.2, so a refused URL that was sent anyway would
// be heard there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { loadConfig } from '../src/config.ts';
import { AddressGuard, parseCidrList } from '../src/dispatch/addressGuard.ts';
import { parseDnsServers } from '../src/dispatch/resolver.ts';
import { Sender, type Poster } from '../src/dispatch/sender.ts';
import { ThreadedSender } from '../src/dispatch/senderThread.ts';
import { DnsServer } from './helpers/dnsServer.ts';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { engines } from './helpers/pg.ts';
import { eventually, Receiver, sleep } from './helpers/receiver.ts';

const ALLOW = '127.0.0.2/32';
const GOOD = '127.0.0.2';
const BAD = '127.0.0.3';

/** Receivers on the good address and on every address a refused URL could reach, one port for all. */
async function receivers(respond?: ConstructorParameters<typeof Receiver>[0]) {
  for (let tries = 0; ; tries++) {
    const good = await new Receiver(respond).start(GOOD);
    const port = Number(new URL(good.url).port);
    const others: Receiver[] = [];
    try {
      for (const host of [BAD, '127.0.0.1', '::1']) others.push(await new Receiver().start(host, port));
      const [bad, loop, loop6] = others as [Receiver, Receiver, Receiver];
      return { good, bad, loop, loop6, port, all: [good, ...others] };
    } catch (err) {
      // The port was taken on one of the other addresses: try another one.
      await Promise.all([good, ...others].map((r) => r.stop()));
      if (tries >= 5) throw err;
    }
  }
}
type Rx = Awaited<ReturnType<typeof receivers>>;
const heardByRefused = (rx: Rx) => rx.bad.received.length + rx.loop.received.length + rx.loop6.received.length;

/** Literal hosts that all reach loopback, the unspecified address or a metadata service. */
const LITERAL_FORMS = [
  '127.0.0.1', BAD, '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', '[0:0:0:0:0:ffff:127.0.0.1]', '[::ffff:127.0.0.3]',
  '2130706433', '0177.0.0.1', '0x7f.1', '0x7f000001', '017700000001', '127.1', '0x7f.0.0.1', '%31%32%37.0.0.1', '127.0.0.1.',
  '0.0.0.0', '0', '[::]', '[::ffff:0.0.0.0]', '[::1]', '[0:0:0:0:0:0:0:1]', '[::127.0.0.1]', '[::ffff:0:7f00:1]',
  '[fe80::1]', '[fd00::1]', '[fec0::1]', '[ff02::1]',
  '[64:ff9b::7f00:1]', '[64:ff9b::a9fe:a9fe]', '[64:ff9b:1::a9fe:a9fe]', '[2002:7f00:1::]', '[2001::1]',
  '169.254.169.254', '[::ffff:169.254.169.254]', '[fd00:ec2::254]', '[fd20:ce::254]', '100.100.100.200', '168.63.129.16', '192.0.0.192', '169.254.170.2',
];

/** Names the test's DNS server answers: metadata services, rebinding tricks, a mix of good and bad. */
const NAMES: Record<string, { A?: string[]; AAAA?: string[] }> = {
  'metadata.google.internal': { A: ['169.254.169.254'] },
  'instance-data.ec2.internal': { A: ['169.254.169.254'], AAAA: ['fd00:ec2::254'] },
  'metadata.tencentyun.com': { A: ['169.254.0.23'] },
  'localhost': { A: ['127.0.0.1'], AAAA: ['::1'] },
  'mixed.test': { A: [GOOD, BAD] },
  'mixed6.test': { A: [GOOD], AAAA: ['::1'] },
  'mapped6.test': { A: [GOOD], AAAA: ['::ffff:127.0.0.3'] },
  'nat64.test': { AAAA: ['64:ff9b::7f00:3'] },
  'zero.test': { A: ['0.0.0.0'] },
};

describe('SSRF', () => {
  let dns: DnsServer;
  let rx: Rx;
  const servers = () => parseDnsServers(dns.address);

  before(async () => {
    dns = await new DnsServer().start();
    for (const [name, records] of Object.entries(NAMES)) dns.set(name, records);
    dns.set('good.test', { A: [GOOD] });
    // Every answer closes its connection, so each request is a new connection and a new lookup:
    // a kept-alive socket to the good address would otherwise carry a request after the name changed.
    const close = { connection: 'close' };
    rx = await receivers((r) => {
      const m = /^\/redirect\/(\d{3})$/.exec(r.path);
      if (m) return { status: Number(m[1]), headers: { ...close, location: `http://${BAD}:${rx.port}/landed` }, body: 'moved' };
      if (r.path === '/redirect-home') return { status: 302, headers: { ...close, location: `http://${GOOD}:${rx.port}/landed` } };
      if (r.path === '/redirect-metadata') return { status: 307, headers: { ...close, location: 'http://169.254.169.254/latest/meta-data/' } };
      return { status: 200, headers: close, body: 'ok' };
    });
  });

  after(async () => {
    await Promise.all(rx.all.map((r) => r.stop()));
    await dns.stop();
  });

  describe('HERALD_DNS_SERVERS', () => {
    const base = { HERALD_ADMIN_TOKEN: 't', HERALD_SECRET_KEY: 'ab'.repeat(32), HERALD_DATA_DIR: '/nonexistent-herald-dir' };

    test('is read into the config, each server with its port, and a bad entry stops the start naming the setting', () => {
      assert.deepEqual(loadConfig(base).dnsServers, []);
      assert.deepEqual(loadConfig({ ...base, HERALD_DNS_SERVERS: '127.0.0.1:5353, 10.0.0.53 ,[::1]:53' }).dnsServers, ['127.0.0.1:5353', '10.0.0.53:53', '[::1]:53']);
      for (const bad of ['dns.example', '127.0.0.1:0', '127.0.0.1:65536', '[::1', '300.1.1.1', '127.0.0.1:53:53']) {
        assert.throws(() => loadConfig({ ...base, HERALD_DNS_SERVERS: bad }), (err: Error) => err.message.includes('HERALD_DNS_SERVERS') && err.message.includes(bad), bad);
      }
    });

    test('the guard resolves through those servers only: a name the system does not know resolves, /etc/hosts is not read', async () => {
      const guard = new AddressGuard(parseCidrList(ALLOW), servers());
      const asked = dns.queries.length;
      assert.equal(await guard.checkUrl('http://good.test/'), null);
      assert.ok(dns.queries.slice(asked).includes('good.test A'), 'the test server was asked');
      // The system's resolver would not know good.test; the guard without servers accepts it as not resolving now.
      assert.equal(await new AddressGuard(parseCidrList(ALLOW)).checkUrl('http://good.test/'), null);
      // localhost comes from the server's table (127.0.0.1, ::1), not from /etc/hosts: with no record it does not resolve.
      dns.set('localhost', undefined);
      const { err } = await new Promise<{ err: (Error & { code?: string }) | null }>((res) => guard.lookup('localhost', { all: true }, (e: Error | null) => res({ err: e })));
      dns.set('localhost', NAMES.localhost);
      assert.equal(err?.code, 'ENOTFOUND');
      // A literal address is answered as itself, without a query.
      const n = dns.queries.length;
      const literal = await new Promise<unknown[]>((res) => guard.lookup('8.8.8.8', { all: true }, (...args: unknown[]) => res(args)));
      assert.deepEqual(literal, [null, [{ address: '8.8.8.8', family: 4 }]]);
      assert.equal(dns.queries.length, n);
    });
  });

  test('a name server that does not answer: registration accepts the name for now, a delivery fails as dns (retried), never as sent', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((ok) => sock.bind(0, '127.0.0.1', ok));
    const dead = `127.0.0.1:${sock.address().port}`;
    await new Promise<void>((ok) => sock.close(() => ok()));
    const guard = new AddressGuard(parseCidrList(ALLOW), [dead]);
    assert.equal(await guard.checkUrl('http://good.test/'), null);
    const sender = new Sender(guard, 2000, 1);
    try {
      const t0 = Date.now();
      const r = await sender.post(`http://good.test:${rx.port}/dead-dns`, {}, 'x');
      assert.equal(r.errorKind, 'dns', JSON.stringify(r));
      assert.match(r.error ?? '', /good\.test did not resolve/);
      assert.ok(Date.now() - t0 < 5000);
    } finally {
      await sender.close();
    }
    assert.ok(!rx.good.received.some((x) => x.path === '/dead-dns'));
  });

  describe('AddressGuard with the resolver: registration-time checks', () => {
    test('a name that resolves to a refused address (of either family, in any position) is refused', async () => {
      const guard = new AddressGuard(parseCidrList(ALLOW), servers());
      for (const name of Object.keys(NAMES)) {
        const why = await guard.checkUrl(`https://${name}/hook`);
        assert.match(why ?? '', /^resolves to .* (is a private, loopback or reserved address|is a reserved address)/, name);
      }
      assert.equal(await guard.checkUrl('https://good.test/hook'), null);
    });

    test('every literal form of loopback, unspecified and metadata addresses is refused', async () => {
      const guard = new AddressGuard(parseCidrList(ALLOW), servers());
      for (const host of LITERAL_FORMS) {
        assert.match((await guard.checkUrl(`http://${host}/x`)) ?? '', /^points to /, host);
      }
      // The zone-id form is not a URL at all.
      assert.equal(await guard.checkUrl('http://[fe80::1%25lo]/'), 'must be an absolute http(s) URL');
      assert.equal(await guard.checkUrl(`http://${GOOD}/x`), null);
    });
  });

  // Sending happens in a worker thread by default: the thread must resolve through the same servers.
  for (const kind of ['in-thread', 'sender thread'] as const) {
    describe(`at connect time (${kind})`, () => {
      let sender: Poster;
      before(async () => {
        const o = { allowPrivateNetworks: parseCidrList(ALLOW), dnsServers: servers(), requestTimeoutMs: 2000, connectionsPerOrigin: 4 };
        if (kind === 'in-thread') sender = new Sender(new AddressGuard(o.allowPrivateNetworks, o.dnsServers), o.requestTimeoutMs, o.connectionsPerOrigin);
        else {
          const t = new ThreadedSender(o);
          await t.ready;
          sender = t;
        }
      });
      after(() => sender.close());

      const name = `rebind-${kind.replace(' ', '-')}.test`;

      test('DNS rebinding: the name resolved to the good address at registration, to a refused one at connect: refused_address, nothing sent', async () => {
        // The control: a name only the test's server knows reaches the good address, so this sender resolves through it.
        const ok = await sender.post(`http://good.test:${rx.port}/through-the-resolver`, {}, '{}');
        assert.equal(ok.statusCode, 200, JSON.stringify(ok));
        assert.ok(rx.good.received.some((x) => x.path === '/through-the-resolver'));
        const guard = new AddressGuard(parseCidrList(ALLOW), servers());
        dns.set(name, { A: [GOOD] });
        assert.equal(await guard.checkUrl(`http://${name}:${rx.port}/hook`), null, 'registration accepts it');
        dns.set(name, { A: [BAD] });
        const r = await sender.post(`http://${name}:${rx.port}/hook`, { 'content-type': 'application/json' }, '{}');
        assert.equal(r.errorKind, 'refused_address', JSON.stringify(r));
        assert.equal(r.statusCode, null);
        assert.match(r.error ?? '', new RegExp(`${name.replace(/\./g, '\\.')} resolves to 127\\.0\\.0\\.3`));
        assert.equal(heardByRefused(rx), 0);
      });

      test('a name with several addresses, one of them refused (A, AAAA, mapped, NAT64): refused, nothing sent anywhere', async () => {
        const before = rx.good.received.length;
        for (const n of ['mixed.test', 'mixed6.test', 'mapped6.test', 'nat64.test', 'zero.test', 'localhost']) {
          const r = await sender.post(`http://${n}:${rx.port}/x`, {}, 'x');
          assert.equal(r.errorKind, 'refused_address', `${n}: ${JSON.stringify(r)}`);
        }
        assert.equal(rx.good.received.length, before, 'not even the good address of a mixed name is used');
        assert.equal(heardByRefused(rx), 0);
      });

      test('metadata names and every literal form are refused_address; the receivers on 127.0.0.1, 127.0.0.3 and ::1 hear nothing', async () => {
        for (const n of ['metadata.google.internal', 'instance-data.ec2.internal', 'metadata.tencentyun.com']) {
          const r = await sender.post(`http://${n}/computeMetadata/v1/`, {}, 'x');
          assert.equal(r.errorKind, 'refused_address', `${n}: ${JSON.stringify(r)}`);
        }
        for (const host of LITERAL_FORMS) {
          const r = await sender.post(`http://${host}:${rx.port}/x`, {}, 'x');
          assert.equal(r.errorKind, 'refused_address', `${host}: ${JSON.stringify(r)}`);
          assert.equal(r.durationMs < 1000, true, 'refused before any connection is tried');
        }
        assert.equal(heardByRefused(rx), 0);
        // The control: the same sender does reach the allowed address by its literal.
        const ok = await sender.post(`http://${GOOD}:${rx.port}/control`, {}, 'x');
        assert.equal(ok.statusCode, 200, JSON.stringify(ok));
      });

      test('redirects are never followed: a 3xx is the answer recorded, and its Location is not fetched', async () => {
        const before = rx.good.received.length;
        for (const code of [301, 302, 303, 307, 308]) {
          const r = await sender.post(`http://${GOOD}:${rx.port}/redirect/${code}`, {}, 'x');
          assert.equal(r.statusCode, code);
          assert.equal(r.errorKind, 'http_status');
          assert.equal(r.responseBody, 'moved');
        }
        for (const path of ['/redirect-home', '/redirect-metadata']) {
          const r = await sender.post(`http://${GOOD}:${rx.port}${path}`, {}, 'x');
          assert.ok(r.statusCode === 302 || r.statusCode === 307, JSON.stringify(r));
        }
        await sleep(100);
        assert.equal(rx.good.received.length, before + 7, 'only the requests made, not their redirects');
        assert.ok(!rx.good.received.some((x) => x.path === '/landed'), 'not even a redirect back to the allowed address');
        assert.equal(heardByRefused(rx), 0);
      });
    });
  }

  for (const engine of engines()) describe(`Herald end to end (${engine}, sender thread): every dialect`, () => {
    let h: TestHerald;
    let tenant: Awaited<ReturnType<TestHerald['tenant']>>;
    let paycorToken = '';

    before(async () => {
      h = await startHerald(engine, {
        HERALD_ALLOW_PRIVATE_NETWORKS: ALLOW, HERALD_DNS_SERVERS: dns.address,
        HERALD_RETRY_SCHEDULE: '0.3,0.3,0.3,0.3,0.3,0.3', HERALD_REQUEST_TIMEOUT_MS: '2000',
      });
      tenant = await h.tenant();
      const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: tenant.credentials.client_id, client_secret: tenant.credentials.client_secret, scope: 'openid' });
      const res = await fetch(h.url + '/Accounts/v2/Common/Token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'Ocp-Apim-Subscription-Key': tenant.credentials.subscription_key }, body: form.toString() });
      paycorToken = ((await res.json()) as { access_token: string }).access_token;
    });
    after(() => h.stop());

    const native = (method: string, path: string, body?: unknown) => h.call(method, `/api/v1${path}`, tenant.credentials.api_token, body);
    const paycor = (method: string, path: string, body?: unknown) => h.call(method, path, paycorToken, body, { 'Ocp-Apim-Subscription-Key': tenant.credentials.subscription_key });
    const gusto = (method: string, path: string, body?: unknown) => h.call(method, path, null, body, { authorization: `Token ${tenant.credentials.api_token}` });
    const counts = async () => [
      (await native('GET', '/endpoints')).body.data.length,
      (await paycor('GET', '/eventsubscriptions/user/registrations')).body.length,
      (await gusto('GET', '/v1/webhook_subscriptions')).body.length,
    ];

    test('registration refuses every form in every dialect, in its own error shape, naming the field, saving nothing', async () => {
      const before = await counts();
      const urls = [...LITERAL_FORMS.map((f) => `http://${f}/hook`), ...Object.keys(NAMES).map((n) => `https://${n}/hook`), 'http://[fe80::1%25lo]/'];
      for (const url of urls) {
        const n = await native('POST', '/endpoints', { url });
        assert.equal(n.status, url.includes('%25') ? 400 : 422, `native ${url}: ${JSON.stringify(n.body)}`);
        assert.equal(n.body.error.field, 'url', `native names url: ${url}`);
        const p = await paycor('POST', '/eventsubscriptions/user/registrations', { WebHookUri: url, IsPaused: false });
        assert.equal(p.status, 400, `paycor ${url}: ${JSON.stringify(p.body)}`);
        assert.ok('WebHookUri' in p.body.Source, `paycor names WebHookUri: ${url}`);
        const m = await paycor('POST', '/v1/events/mockevent', { EventType: 'Employee.Add', NotificationURL: url, NotificationSecret: 's'.repeat(32) });
        assert.equal(m.status, 400, `paycor mock ${url}: ${JSON.stringify(m.body)}`);
        assert.ok('NotificationURL' in m.body.Source);
        const g = await gusto('POST', '/v1/webhook_subscriptions', { url, subscription_types: ['Employee'] });
        assert.equal(g.status, 422, `gusto ${url}: ${JSON.stringify(g.body)}`);
        assert.equal(g.body.errors[0].error_key, 'url');
      }
      assert.deepEqual(await counts(), before, 'no refused registration saved anything');
      await sleep(200);
      assert.equal(heardByRefused(rx), 0, 'no mock event or verification went anywhere refused');
    });

    test('changing a URL to a refused form is refused too (native PATCH, Paycor PUT), and the URL stays', async () => {
      const ep = (await native('POST', '/endpoints', { url: `http://good.test:${rx.port}/n`, paused: true })).body;
      const reg = (await paycor('POST', '/eventsubscriptions/user/registrations', { WebHookUri: `http://good.test:${rx.port}/p` })).body;
      try {
        for (const url of ['http://0x7f.1/', 'http://[::ffff:7f00:1]/', 'http://metadata.google.internal/']) {
          assert.equal((await native('PATCH', `/endpoints/${ep.id}`, { url })).status, 422, url);
          assert.equal((await paycor('PUT', `/eventsubscriptions/user/registrations/${reg.Id}`, { Id: reg.Id, WebHookUri: url })).status, 400, url);
        }
        assert.equal((await native('GET', `/endpoints/${ep.id}`)).body.url, `http://good.test:${rx.port}/n`);
        assert.equal((await paycor('GET', `/eventsubscriptions/user/registrations/${reg.Id}`)).body.WebHookUri, `http://good.test:${rx.port}/p`);
      } finally {
        await native('DELETE', `/endpoints/${ep.id}`);
        await paycor('DELETE', `/eventsubscriptions/user/registrations/${reg.Id}`);
      }
    });

    test('DNS rebinding in every dialect: registered while the name was good, refused_address at connect and recorded, nothing sent; good again, delivered', async () => {
      const names = { native: 'native.rebind.test', paycor: 'paycor.rebind.test', gusto: 'gusto.rebind.test' };
      for (const n of Object.values(names)) dns.set(n, { A: [GOOD] });
      const t = await h.tenant('Rebind');
      const api = (token: string) => (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => h.call(method, path, token, body, headers);
      const ep = await api(t.credentials.api_token)('POST', '/api/v1/endpoints', { url: `http://${names.native}:${rx.port}/native` });
      assert.equal(ep.status, 201, JSON.stringify(ep.body));
      const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: t.credentials.client_id, client_secret: t.credentials.client_secret, scope: 'openid' });
      const tok = await (await fetch(h.url + '/Accounts/v2/Common/Token', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key }, body: form.toString() })).json() as { access_token: string };
      const reg = await api(tok.access_token)('POST', '/eventsubscriptions/user/registrations', { WebHookUri: `http://${names.paycor}:${rx.port}/paycor`, IsPaused: false, Filters: ['Add'] }, { 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key });
      assert.equal(reg.status, 201, JSON.stringify(reg.body));
      const gustoApi = (method: string, path: string, body?: unknown) => h.call(method, path, null, body, { authorization: `Token ${t.credentials.api_token}` });
      const heard = rx.good.received.length;
      const sub = await gustoApi('POST', '/v1/webhook_subscriptions', { url: `http://${names.gusto}:${rx.port}/gusto`, subscription_types: ['Employee'] });
      assert.equal(sub.status, 201, JSON.stringify(sub.body));
      await rx.good.waitFor(heard + 1);
      const verification = rx.good.received.slice(heard).find((r) => r.path === '/gusto')!;
      const v = await gustoApi('PUT', `/v1/webhook_subscriptions/${sub.body.uuid}/verify`, { verification_token: JSON.parse(verification.body).verification_token });
      assert.equal(v.status, 200, JSON.stringify(v.body));

      // Now each name points somewhere refused, by a different trick.
      dns.set(names.native, { A: [BAD] });
      dns.set(names.paycor, { A: [GOOD], AAAA: ['::ffff:127.0.0.3'] });
      dns.set(names.gusto, { A: [GOOD, BAD] });
      const before = rx.good.received.length;
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'rebind-1' });
      assert.equal(ev.deliveries, 3);
      const deliveries = async () => (await h.admin('GET', `/admin/v1/events/${ev.id}`)).body.deliveries as { status: string; attempt_log: { status_code: number | null; error_kind: string | null; error: string | null }[] }[];
      await eventually(async () => (await deliveries()).every((d) => d.attempt_log.some((a) => a.error_kind === 'refused_address')), 10_000, 'a refused attempt on record for each dialect');
      for (const d of await deliveries()) {
        assert.notEqual(d.status, 'succeeded');
        for (const a of d.attempt_log) {
          assert.equal(a.error_kind, 'refused_address', JSON.stringify(a));
          assert.equal(a.status_code, null);
          assert.match(a.error ?? '', /rebind\.test resolves to .*127\.0\.0\.3/);
        }
      }
      assert.equal(rx.good.received.length, before, 'nothing went to the good address of a mixed name either');
      assert.equal(heardByRefused(rx), 0, 'nothing reached the refused address');

      // Names good again: the retries (resolved again at each connect) are delivered.
      for (const n of Object.values(names)) dns.set(n, { A: [GOOD] });
      await eventually(async () => (await deliveries()).every((d) => d.status === 'succeeded'), 10_000, 'every delivery to succeed once the names are good');
      const paths = rx.good.received.slice(before).map((r) => r.path).sort();
      assert.deepEqual(paths, ['/gusto', '/native', '/paycor']);
      assert.equal(heardByRefused(rx), 0);
    });

    test('a redirect to a refused address is recorded as the 3xx answer and not followed', async () => {
      const t = await h.tenant('Redirect');
      const ep = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: `http://good.test:${rx.port}/redirect/302` });
      assert.equal(ep.status, 201, JSON.stringify(ep.body));
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'redirect-1' });
      await eventually(async () => (await h.admin('GET', `/admin/v1/events/${ev.id}`)).body.deliveries[0].attempt_log.length >= 1, 10_000, 'an attempt');
      const a = (await h.admin('GET', `/admin/v1/events/${ev.id}`)).body.deliveries[0].attempt_log[0];
      assert.equal(a.status_code, 302);
      assert.equal(a.error_kind, 'http_status');
      assert.equal(a.response_body, 'moved');
      await h.call('DELETE', `/api/v1/endpoints/${ep.body.id}`, t.credentials.api_token);
      await sleep(200);
      assert.ok(!rx.good.received.some((x) => x.path === '/landed'));
      assert.equal(heardByRefused(rx), 0);
    });
  });
});
