// The receiver SDK (herald/verify) and `herald verify`, judged against what Herald really
// sends: a real Herald, real receivers on loopback that keep the exact bytes, every dialect,
// non-ASCII data, and a secret rotation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook as StandardWebhook } from 'standardwebhooks';
// By the package's own name: this also proves the "exports" map that receivers import through.
import { readRawBody, verifyGusto, verifyPaycor, verifyStandard, type VerifyResult } from 'herald/verify';
import { asciiJson, paycorSignature } from '../src/dialects/paycor/envelope.ts';
import { hexHmac, standardSignature } from '../src/signing/signatures.ts';
import { engines } from './helpers/pg.ts';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { seedValidate } from './helpers/paycorValidator.ts';
import { eventually, Receiver, type Received } from './helpers/receiver.ts';

const DATA = { name: 'José', city: 'Zürich', office: '東京', mood: '🦄', quote: 'say "hi" \\ \u2028' };
const whsec = () => 'whsec_' + randomBytes(32).toString('base64');

/** The same bytes with one bit flipped inside the body. */
function flipped(raw: Buffer, at = Math.floor(raw.length / 2)): Buffer {
  const b = Buffer.from(raw);
  b[at]! ^= 0x01;
  return b;
}

function isJson(s: string): boolean {
  try { JSON.parse(s); return true; } catch { return false; }
}

function reason(r: VerifyResult): string {
  return r.ok ? 'ok' : r.reason;
}

/** Python's json.dumps defaults: ", " and ": " separators and \u escapes for non-ASCII. */
function pythonJson(value: unknown): string {
  return asciiJson(value).replace(/("(?:[^"\\]|\\.)*")|([,:])/g, (_m, str, sep) => str ?? (sep === ',' ? ', ' : ': '));
}

describe('herald/verify agrees with Herald\'s signer on any body', () => {
  const bodies = [
    '{}', JSON.stringify(DATA), asciiJson(DATA), '{"a":"\u00e9\u0301 \ud83d\ude00 \u0000"}',
    randomBytes(64).toString('base64'), 'x'.repeat(100_000),
  ];

  test('Standard Webhooks: every signature the engine makes verifies, and the standardwebhooks library agrees', () => {
    for (const body of bodies) {
      const secret = whsec();
      const ts = Math.floor(Date.now() / 1000);
      const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': String(ts), 'webhook-signature': standardSignature(secret, 'msg_1', ts, body) };
      assert.deepEqual(verifyStandard(body, headers, secret), { ok: true, id: 'msg_1', timestamp: ts });
      assert.deepEqual(verifyStandard(Buffer.from(body, 'utf8'), headers, secret), { ok: true, id: 'msg_1', timestamp: ts });
      // The library parses what it verifies, so it only judges the JSON bodies.
      if (isJson(body)) new StandardWebhook(secret).verify(body, headers);
      const lib = new StandardWebhook(secret).sign('msg_1', new Date(ts * 1000), body);
      assert.equal(reason(verifyStandard(body, { ...headers, 'webhook-signature': lib }, secret)), 'ok');
      assert.equal(reason(verifyStandard(body, headers, whsec())), 'no_matching_signature');
      assert.equal(reason(verifyStandard(body + ' ', headers, secret)), 'no_matching_signature');
      assert.equal(reason(verifyStandard(body, { ...headers, 'webhook-id': 'msg_2' }, secret)), 'no_matching_signature');
      assert.equal(reason(verifyStandard(body, { ...headers, 'webhook-timestamp': String(ts + 1) }, secret)), 'no_matching_signature');
    }
  });

  test('Paycor-style and Gusto-style: the engine\'s HMACs verify, and nothing else does', () => {
    for (const body of bodies) {
      const secret = randomBytes(24).toString('base64');
      if (/^[\x20-\x7e]*$/.test(body)) {
        const sig = paycorSignature(secret, body);
        assert.equal(reason(verifyPaycor(body, { 'X-Paycor-Signature': sig }, secret)), 'ok');
        assert.equal(reason(verifyPaycor(body, { 'x-paycor-signature': sig.toLowerCase() }, secret)), 'ok', 'hex in any case, as the seed upper-cases the header');
        assert.equal(reason(verifyPaycor(body, { 'x-paycor-signature': sig }, secret + 'x')), 'no_matching_signature');
      }
      const token = randomUUID();
      const g = hexHmac(token, body);
      assert.equal(reason(verifyGusto(body, { 'X-Gusto-Signature': g }, token)), 'ok');
      assert.equal(reason(verifyGusto(body + '\n', { 'X-Gusto-Signature': g }, token)), 'no_matching_signature');
      assert.equal(reason(verifyGusto(body, { 'X-Gusto-Signature': g }, randomUUID())), 'no_matching_signature');
    }
  });

  test('headers as node gives them, in any case, as arrays, or as a WHATWG Headers', () => {
    const secret = whsec();
    const body = JSON.stringify(DATA);
    const ts = Math.floor(Date.now() / 1000);
    const sig = standardSignature(secret, 'e1', ts, body);
    const other = standardSignature(whsec(), 'e1', ts, body);
    const ok = (headers: any) => reason(verifyStandard(body, headers, secret));
    assert.equal(ok({ 'Webhook-Id': 'e1', 'WEBHOOK-TIMESTAMP': String(ts), 'webhook-Signature': sig }), 'ok');
    assert.equal(ok({ 'webhook-id': ['e1'], 'webhook-timestamp': [String(ts)], 'webhook-signature': [other, sig] }), 'ok', 'a repeated signature header');
    assert.equal(ok({ 'webhook-id': 'e1', 'webhook-timestamp': String(ts), 'webhook-signature': `${other}, ${sig}` }), 'ok', 'joined with ", " by a proxy');
    assert.equal(ok({ 'webhook-id': 'e1', 'webhook-timestamp': String(ts), 'webhook-signature': `v1a,${sig.slice(3)} v2,x ${sig}` }), 'ok', 'other versions are skipped');
    assert.equal(ok(new Headers({ 'Webhook-Id': 'e1', 'Webhook-Timestamp': String(ts), 'Webhook-Signature': `${other} ${sig}` })), 'ok');
    assert.equal(ok({ 'webhook-id': 'e1', 'webhook-timestamp': String(ts), 'webhook-signature': `v1a,${sig.slice(3)}` }), 'no_matching_signature');
    assert.equal(ok({ 'webhook-id': 'e1', 'webhook-timestamp': String(ts), 'webhook-signature': sig.slice(0, -4) }), 'no_matching_signature', 'a cut signature');
    assert.equal(ok({ 'webhook-id': 'e1', 'webhook-timestamp': String(ts) }), 'missing_header');
    assert.equal(ok({ 'webhook-id': '', 'webhook-timestamp': String(ts), 'webhook-signature': sig }), 'missing_header');
    assert.equal(ok(new Headers({ 'webhook-timestamp': String(ts), 'webhook-signature': sig })), 'missing_header');
    assert.equal(ok({ 'webhook-id': 'e1', 'webhook-timestamp': `${ts}.5`, 'webhook-signature': sig }), 'bad_timestamp');
    assert.equal(ok({ 'webhook-id': 'e1', 'webhook-timestamp': 'yesterday', 'webhook-signature': sig }), 'bad_timestamp');
    const missing = verifyStandard(body, {}, secret);
    assert.ok(!missing.ok && /webhook-id, webhook-timestamp, webhook-signature/.test(missing.message), 'names what is missing');
    assert.equal(reason(verifyPaycor(body, {}, 'a-secret')), 'missing_header');
    assert.equal(reason(verifyGusto(body, { 'x-gusto-signature': '' }, 'a-token')), 'missing_header');
    assert.equal(reason(verifyGusto(body, { 'x-gusto-signature': 'zz' }, 'a-token')), 'no_matching_signature');
  });

  test('a secret that cannot be one is bad_secret; no secret, or a parsed body, is a programmer error and throws', () => {
    const body = '{}';
    const ts = Math.floor(Date.now() / 1000);
    const headers = { 'webhook-id': 'e1', 'webhook-timestamp': String(ts), 'webhook-signature': standardSignature(whsec(), 'e1', ts, body) };
    assert.equal(reason(verifyStandard(body, headers, 'whsec_not base64!')), 'bad_secret');
    assert.equal(reason(verifyStandard(body, headers, [whsec(), 'whsec_']), ), 'bad_secret', 'one bad secret of two is reported at once, not when the good one expires');
    assert.equal(reason(verifyPaycor(body, { 'x-paycor-signature': 'A'.repeat(64) }, 'Zürich-secret-0123456789abcdefghij')), 'bad_secret');
    assert.equal(reason(verifyGusto(body, { 'x-gusto-signature': 'a'.repeat(64) }, 'token\n')), 'bad_secret');
    for (const none of ['', [], [''], undefined, 42]) {
      assert.throws(() => verifyStandard(body, headers, none as any), TypeError);
      assert.throws(() => verifyPaycor(body, headers, none as any), TypeError);
      assert.throws(() => verifyGusto(body, headers, none as any), TypeError);
    }
    assert.throws(() => verifyStandard({ a: 1 } as any, headers, whsec()), /body parser/);
    assert.throws(() => verifyGusto(undefined as any, headers, 'x'), TypeError);
    assert.throws(() => verifyStandard(body, null as any, whsec()), TypeError);
    assert.throws(() => verifyStandard(body, headers, whsec(), { toleranceSeconds: -1 }), TypeError);
    assert.throws(() => verifyStandard(body, headers, whsec(), { now: 'now' as any }), TypeError);
  });

  const older = ['/usr/bin/node', '/usr/local/bin/node'].map((bin) => ({ bin, v: spawnSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout?.trim() }))
    .find(({ v }) => v && Number(v.split('.')[0]) < 22);
  test(`runs as plain JavaScript on a Node that cannot strip types (${older ? `${older.bin} ${older.v}` : 'none installed'})`, { skip: !older && 'no Node older than 22 on this machine' }, () => {
    const secret = whsec();
    const body = JSON.stringify(DATA);
    const ts = Math.floor(Date.now() / 1000);
    const headers = { 'webhook-id': 'e1', 'webhook-timestamp': String(ts), 'webhook-signature': standardSignature(secret, 'e1', ts, body) };
    const code = `import { verifyStandard } from 'herald/verify';
      const [body, headers, secret] = JSON.parse(process.argv[1]);
      console.log(JSON.stringify([verifyStandard(body, headers, secret).ok, verifyStandard(body + ' ', headers, secret).ok]));`;
    const r = spawnSync(older!.bin, ['--input-type=module', '-e', code, JSON.stringify([body, headers, secret])], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [true, false]);
  });
});

type Creds = Awaited<ReturnType<TestHerald['tenant']>>;

/** A Paycor-style client: an access token and the subscription key on every call. */
async function paycor(h: TestHerald, t: Creds) {
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: t.credentials.client_id, client_secret: t.credentials.client_secret, scope: 'openid' });
  const res = await fetch(h.url + '/Accounts/v2/Common/Token', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key },
    body: form.toString(),
  });
  const token = ((await res.json()) as any).access_token;
  return (method: string, path: string, body?: unknown) => h.call(method, path, token, body, { 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key });
}

/** A TCP server that keeps each HTTP request's bytes exactly as they came off the wire. */
class WireCapture {
  readonly requests: Buffer[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly server = createTcpServer((sock) => {
    this.sockets.add(sock);
    sock.on('close', () => this.sockets.delete(sock));
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/\r\ncontent-length:[ \t]*(\d+)/i.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        this.requests.push(Buffer.from(buf.subarray(0, end + 4 + len)));
        buf = buf.subarray(end + 4 + len);
        sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
  });
  url = '';

  async start(): Promise<this> {
    await new Promise<void>((ok) => this.server.listen(0, '127.0.0.1', ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }
}

function herald(args: string[], stdin?: Buffer): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['src/cli.ts', 'verify', ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  child.stdin.end(stdin ?? '');
  return new Promise((ok) => child.on('close', (code) => ok({ code, stdout, stderr })));
}

for (const engine of engines()) {
  describe(`herald/verify against real deliveries on ${engine}`, () => {
    let h: TestHerald;
    const stops: (() => Promise<void>)[] = [];
    const receiver = async () => { const r = await new Receiver().start(); stops.push(() => r.stop()); return r; };
    const dir = mkdtempSync(join(tmpdir(), 'herald-verify-'));
    before(async () => { h = await startHerald(engine); });
    after(async () => {
      await h.stop();
      await Promise.all(stops.map((s) => s()));
      rmSync(dir, { recursive: true, force: true });
    });

    const endpoint = async (token: string, url: string) => {
      const r = await h.call('POST', '/api/v1/endpoints', token, { url });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body as { id: string; secret: string };
    };

    test('native: a delivery with non-ASCII data verifies; a flipped byte, another secret, a re-serialised body and an old timestamp do not', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      const ep = await endpoint(t.credentials.api_token, rx.url + '/hook');
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'emp-1', data: DATA });
      await rx.waitFor(1);
      const got = rx.received[0]!;
      const ts = Number(got.headers['webhook-timestamp']);
      assert.deepEqual(verifyStandard(got.raw, got.headers, ep.secret), { ok: true, id: ev.id, timestamp: ts });
      assert.ok(Math.abs(ts - Date.now() / 1000) < 60);
      assert.equal(reason(verifyStandard(got.body, got.headers, ep.secret)), 'ok', 'the body as a UTF-8 string');
      assert.equal(reason(verifyStandard(new Uint8Array(got.raw).buffer, got.headers, ep.secret)), 'ok', 'as an ArrayBuffer');
      assert.equal(reason(verifyStandard(got.raw, new Headers(got.headers as Record<string, string>), ep.secret)), 'ok', 'with a WHATWG Headers');
      assert.equal(JSON.parse(got.body).data.office, '東京');

      for (const at of [0, got.raw.indexOf('東'), got.raw.length - 1]) {
        assert.equal(reason(verifyStandard(flipped(got.raw, at), got.headers, ep.secret)), 'no_matching_signature', `flipped byte ${at}`);
      }
      assert.equal(reason(verifyStandard(got.raw, got.headers, whsec())), 'no_matching_signature');
      const parsed = JSON.parse(got.body);
      for (const again of [JSON.stringify(parsed, null, 2), JSON.stringify({ type: parsed.type, ...parsed }), asciiJson(parsed), pythonJson(parsed)]) {
        assert.notEqual(again, got.body);
        assert.equal(reason(verifyStandard(again, got.headers, ep.secret)), 'no_matching_signature', again.slice(0, 60));
      }
      assert.equal(reason(verifyStandard(got.raw.toString('latin1'), got.headers, ep.secret)), 'no_matching_signature', 'bytes read as latin1 text');

      const at = (s: number) => ({ now: new Date(s * 1000) });
      assert.equal(reason(verifyStandard(got.raw, got.headers, ep.secret, at(ts + 300))), 'ok', '5 minutes is inside the tolerance');
      const old = verifyStandard(got.raw, got.headers, ep.secret, at(ts + 301));
      assert.equal(reason(old), 'timestamp_too_old');
      assert.ok(!old.ok && old.id === ev.id && /signature matches/.test(old.message), 'said only once the signature held');
      assert.equal(reason(verifyStandard(got.raw, got.headers, ep.secret, { now: (ts - 301) * 1000 })), 'timestamp_in_future');
      assert.equal(reason(verifyStandard(got.raw, got.headers, ep.secret, { ...at(ts + 3600), toleranceSeconds: 3600 })), 'ok');
      assert.equal(reason(verifyStandard(got.raw, got.headers, ep.secret, { ...at(ts + 10 ** 6), toleranceSeconds: Infinity })), 'ok');
      assert.equal(reason(verifyStandard(flipped(got.raw), got.headers, ep.secret, at(ts + 3600))), 'no_matching_signature', 'a forgery is a forgery whatever its age');
    });

    test('native rotation: two signatures; the old secret alone, the new alone and both verify; each signature belongs to one secret', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      const tok = t.credentials.api_token;
      const ep = await endpoint(tok, rx.url);
      const rot = await h.call('POST', `/api/v1/endpoints/${ep.id}/rotate-secret`, tok);
      assert.equal(rot.status, 200, JSON.stringify(rot.body));
      const fresh: string = rot.body.secret;
      assert.notEqual(fresh, ep.secret);
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'emp-2', data: DATA });
      await rx.waitFor(1);
      const got = rx.received[0]!;
      const sigs = String(got.headers['webhook-signature']).split(' ');
      assert.equal(sigs.length, 2);
      const wrong = whsec();
      for (const secrets of [ep.secret, fresh, [ep.secret], [fresh], [ep.secret, fresh], [fresh, ep.secret], [wrong, fresh], [ep.secret, wrong]]) {
        const names = [secrets].flat().map((s) => (s === ep.secret ? 'old' : s === fresh ? 'new' : 'wrong'));
        assert.equal(reason(verifyStandard(got.raw, got.headers, secrets)), 'ok', names.join(' + '));
      }
      assert.equal(reason(verifyStandard(got.raw, got.headers, [wrong])), 'no_matching_signature');
      assert.equal(reason(verifyStandard(flipped(got.raw), got.headers, [ep.secret, fresh])), 'no_matching_signature');
      // Each signature alone: the current secret's first, then the one being rotated out.
      const only = (sig: string) => ({ ...got.headers, 'webhook-signature': sig });
      assert.deepEqual([reason(verifyStandard(got.raw, only(sigs[0]!), fresh)), reason(verifyStandard(got.raw, only(sigs[0]!), ep.secret))], ['ok', 'no_matching_signature']);
      assert.deepEqual([reason(verifyStandard(got.raw, only(sigs[1]!), ep.secret)), reason(verifyStandard(got.raw, only(sigs[1]!), fresh))], ['ok', 'no_matching_signature']);
      assert.equal(reason(verifyStandard(got.raw, only(sigs[1]!), [ep.secret, fresh])), 'ok', 'after the grace period only one signature comes, and both secrets still cover it');
    });

    test('readRawBody in a node http receiver: Herald\'s delivery verifies there; a parsed or oversized body is refused', async () => {
      const t = await h.tenant();
      let secret = '';
      const verdicts: VerifyResult[] = [];
      const server: Server = createServer(async (req: IncomingMessage, res) => {
        try {
          const raw = await readRawBody(req, { limitBytes: req.url === '/small' ? 16 : undefined });
          const r = verifyStandard(raw, req.headers, secret);
          verdicts.push(r);
          res.writeHead(r.ok ? 204 : 400).end();
        } catch (err) {
          res.writeHead((err as any).code === 'HERALD_BODY_TOO_LARGE' ? 413 : 500).end();
        }
      });
      await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
      stops.push(() => new Promise((ok) => { server.closeAllConnections(); server.close(() => ok()); }));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const ep = await endpoint(t.credentials.api_token, url + '/hook');
      secret = ep.secret;
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'emp-3', data: DATA });
      await eventually(() => verdicts.length >= 1, 10_000, 'the delivery');
      assert.deepEqual(verdicts[0], { ok: true, id: ev.id, timestamp: (verdicts[0] as any).timestamp });
      await eventually(async () => (await h.admin('GET', `/admin/v1/events/${ev.id}`)).body.deliveries[0].status === 'succeeded', 10_000, 'Herald to record the 204');
      assert.equal((await fetch(url + '/small', { method: 'POST', body: 'x'.repeat(17) })).status, 413);
      // What an Express app hands over: a Buffer kept by express.raw(), or a body a parser consumed.
      const kept = Buffer.from('{"a":1}');
      assert.equal(await readRawBody(Object.assign(Object.create(null), { on() {}, body: kept }) as any), kept);
      await assert.rejects(readRawBody({ on() {}, body: { a: 1 }, readableEnded: true } as any), /already read/);
    });

    test('Paycor-style: a notification with non-ASCII data verifies; re-serialising it (é for \\u00e9) breaks it, as do a flipped byte and another secret', async () => {
      const tenant = await h.tenant();
      const api = await paycor(h, tenant);
      const rx = await receiver();
      const secret = 'sdk-test-' + randomBytes(16).toString('hex');
      const reg = await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: rx.url + '/paycor', Secret: secret, IsPaused: false, Filters: ['Employee.Update'] });
      assert.equal(reg.status, 201, JSON.stringify(reg.body));
      const ev = await h.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Update', entity_id: 'emp-4', parent_id: '1234', data: { ...DATA, changed_fields: ['FirstName'] } });
      await rx.waitFor(1);
      const got: Received = rx.received[0]!;
      assert.ok(/^[\x20-\x7e]*$/.test(got.body), 'Herald sends pure ASCII here');
      assert.equal(JSON.parse(got.body).ExtendedProperties.office, '東京');
      assert.deepEqual(verifyPaycor(got.raw, got.headers, secret), { ok: true, id: ev.id });
      assert.equal(seedValidate(String(got.headers['x-paycor-signature']), got.body, secret), true, 'and the seed\'s validator agrees');
      assert.equal(reason(verifyPaycor(got.body, got.headers, [randomBytes(20).toString('hex'), secret])), 'ok', 'a new secret beside the old one while switching');
      assert.equal(reason(verifyPaycor(flipped(got.raw), got.headers, secret)), 'no_matching_signature');
      assert.equal(reason(verifyPaycor(got.raw, got.headers, secret.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a')))), 'no_matching_signature');
      const again = JSON.stringify(JSON.parse(got.body));
      assert.ok(again.includes('José') && !got.body.includes('José'), 'a parse and stringify round trip writes the characters raw');
      const r = verifyPaycor(again, got.headers, secret);
      assert.equal(reason(r), 'no_matching_signature');
      assert.ok(!r.ok && /parsed and serialised again/.test(r.message), 'says what probably happened');
      assert.equal(reason(verifyPaycor(got.raw, { ...got.headers, 'x-paycor-signature': undefined }, secret)), 'missing_header');
    });

    test('Paycor-style with another signature header (HERALD_PAYCOR_SIGNATURE_HEADER): the header option finds it', async () => {
      const other = await startHerald(engine, { HERALD_PAYCOR_SIGNATURE_HEADER: 'X-Hook-Signature' });
      stops.push(() => other.stop());
      const tenant = await other.tenant();
      const api = await paycor(other, tenant);
      const rx = await receiver();
      const secret = 'sdk-test-' + randomBytes(16).toString('hex');
      assert.equal((await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: rx.url, Secret: secret, IsPaused: false })).status, 201);
      await other.publish({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: 'Zoë', data: DATA });
      await rx.waitFor(1);
      const got = rx.received[0]!;
      assert.equal(reason(verifyPaycor(got.raw, got.headers, secret)), 'missing_header');
      assert.equal(reason(verifyPaycor(got.raw, got.headers, secret, { header: 'X-Hook-Signature' })), 'ok');
    });

    test('Gusto-style: the verification request and events with non-ASCII data verify; tampering and other tokens do not', async () => {
      const t = await h.tenant();
      const rx = await receiver();
      const gusto = (method: string, path: string, body?: unknown) => h.call(method, path, null, body, { authorization: `Token ${t.credentials.api_token}` });
      const created = await gusto('POST', '/v1/webhook_subscriptions', { url: rx.url + '/gusto', subscription_types: ['Employee'] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await rx.waitFor(1);
      const notice = rx.received[0]!;
      const token: string = JSON.parse(notice.body).verification_token;
      assert.deepEqual(verifyGusto(notice.raw, notice.headers, token), { ok: true }, 'self-signed with the token it carries; no event id');
      assert.equal(reason(verifyGusto(notice.raw, notice.headers, randomUUID())), 'no_matching_signature');
      assert.equal((await gusto('PUT', `/v1/webhook_subscriptions/${created.body.uuid}/verify`, { verification_token: token })).status, 200);
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'created', entity_id: 'José-Zürich-東京-🦄', parent_type: 'Company', parent_id: 'co-1', data: { references: { note: DATA.quote, office: DATA.office } } });
      await rx.waitFor(2);
      const got = rx.received[1]!;
      assert.equal(JSON.parse(got.body).entity_uuid, 'José-Zürich-東京-🦄');
      assert.deepEqual(verifyGusto(got.raw, got.headers, token), { ok: true, id: ev.id });
      assert.equal(reason(verifyGusto(got.body, new Headers(got.headers as Record<string, string>), token)), 'ok');
      assert.equal(reason(verifyGusto(flipped(got.raw, got.raw.indexOf('東')), got.headers, token)), 'no_matching_signature');
      assert.equal(reason(verifyGusto(got.raw, got.headers, randomUUID())), 'no_matching_signature');
      for (const again of [JSON.stringify(JSON.parse(got.body), null, 2), pythonJson(JSON.parse(got.body))]) {
        assert.equal(reason(verifyGusto(again, got.headers, token)), 'no_matching_signature', again.slice(0, 60));
      }
      assert.equal(createHmac('sha256', token).update(got.raw).digest('hex'), got.headers['x-gusto-signature'], 'the seed\'s own check agrees');
    });

    test('herald verify: a request captured off the wire is valid (exit 0), tampered is invalid (exit 1), misuse is exit 2', async () => {
      const t = await h.tenant();
      const wire = await new WireCapture().start();
      stops.push(() => wire.stop());
      const ep = await endpoint(t.credentials.api_token, wire.url + '/captured');
      await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'emp-5', data: DATA });
      await eventually(() => wire.requests.length >= 1, 10_000, 'the delivery on the wire');
      const captured = wire.requests[0]!;
      assert.match(captured.subarray(0, 40).toString('latin1'), /^POST \/captured HTTP\/1\.1\r\n/);
      const file = join(dir, 'request.txt');
      writeFileSync(file, captured);

      const valid = await herald(['--scheme', 'standard', '--secret', ep.secret, '--file', file]);
      assert.equal(valid.code, 0, valid.stderr);
      assert.match(valid.stdout, /^valid\n/);
      const json = await herald(['--scheme', 'standard', '--secret', whsec(), '--secret', ep.secret, '--json'], captured);
      assert.equal(json.code, 0, json.stderr);
      assert.equal(JSON.parse(json.stdout).valid, true, 'from stdin, with two secrets');

      const tampered = Buffer.from(captured);
      const at = tampered.indexOf('José') + 1;
      tampered[at] = 'O'.charCodeAt(0);
      writeFileSync(file, tampered);
      const invalid = await herald(['--scheme', 'standard', '--secret', ep.secret, '--file', file]);
      assert.equal(invalid.code, 1, invalid.stderr);
      assert.match(invalid.stdout, /^invalid: no_matching_signature\n/);
      const invalidJson = await herald(['--scheme', 'standard', '--secret', ep.secret, '--json', '--file', file]);
      assert.equal(invalidJson.code, 1);
      assert.deepEqual([JSON.parse(invalidJson.stdout).valid, JSON.parse(invalidJson.stdout).reason], [false, 'no_matching_signature']);
      const wrongScheme = await herald(['--scheme', 'gusto', '--secret', 'some-token'], captured);
      assert.deepEqual([wrongScheme.code, wrongScheme.stdout.split('\n')[0]], [1, 'invalid: missing_header']);

      // An editor that saves the file with a newline after the body, and no Content-Length.
      const headEnd = captured.indexOf('\r\n\r\n');
      const edited = Buffer.concat([Buffer.from(captured.subarray(0, headEnd).toString('latin1').replace(/\r\ncontent-length:[^\r]*/i, '').replace(/\r\n/g, '\n')), Buffer.from('\n\n'), captured.subarray(headEnd + 4), Buffer.from('\n')]);
      const lenient = await herald(['--scheme', 'standard', '--secret', ep.secret, '--json'], edited);
      assert.equal(lenient.code, 0, lenient.stdout + lenient.stderr);
      assert.match(JSON.parse(lenient.stdout).notes.join(' '), /line break/);

      const misuse: [string[], RegExp, Buffer][] = [
        [['--scheme', 'standard'], /--secret/, captured],
        [['--scheme', 'md5', '--secret', ep.secret], /md5/, captured],
        [['--secret', ep.secret], /--scheme/, captured],
        [['--scheme', 'standard', '--secret', 'whsec_***'], /not a whsec_ secret/, captured],
        [['--scheme', 'standard', '--secret', ep.secret, '--file', join(dir, 'missing.txt')], /cannot read/, captured],
        [['--scheme', 'standard', '--secret', ep.secret], /blank line/, Buffer.from('{"just":"a body"}')],
      ];
      const answers = await Promise.all(misuse.map(([args, , stdin]) => herald(args, stdin)));
      misuse.forEach(([args, what], i) => {
        const r = answers[i]!;
        assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, what);
        assert.ok(!r.stderr.includes(ep.secret.slice(6)), 'never prints the secret');
      });
    });
  });
}
