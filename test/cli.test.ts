// The `herald` CLI as a user runs it: a child process against a real Herald on loopback,
// and `herald listen` forwarding real deliveries to a real local receiver.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { loadConfig } from '../src/config.ts';
import { Herald } from '../src/herald.ts';
import { ADMIN, startHerald, testEnv, type TestHerald } from './helpers/herald.ts';
import { pgEnabled } from './helpers/pg.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

const CLI = join(import.meta.dirname, '..', 'src', 'cli.ts');

/** The environment without Herald's own settings, so only what a test gives reaches the CLI. */
const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_') && k !== 'DATABASE_URL'));

interface Run { code: number | null; stdout: string; stderr: string }

function herald(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...baseEnv, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => { stdout += c; });
    p.stderr.on('data', (c) => { stderr += c; });
    // A CLI that hangs fails its test rather than the whole run.
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('error', reject);
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    p.stdin.end(stdin ?? '');
  });
}

/** A running `herald listen`, its output gathered line by line. */
class Listener {
  readonly proc: ChildProcess;
  out = '';
  err = '';
  constructor(args: string[], env: Record<string, string>) {
    this.proc = spawn(process.execPath, [CLI, 'listen', ...args], { env: { ...baseEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (c) => { this.out += c; });
    this.proc.stderr!.on('data', (c) => { this.err += c; });
  }
  lines(): string[] {
    return this.out.split('\n').filter(Boolean);
  }
  async secret(): Promise<string> {
    await eventually(() => /Signing secret/.test(this.out), 10_000, `listen's banner (stdout: ${this.out} stderr: ${this.err})`);
    return /Signing secret \(Standard Webhooks\): (whsec_\S+)/.exec(this.out)![1]!;
  }
  async kill(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const gone = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await gone;
  }
}

const verify = (secret: string, r: { body: string; headers: Record<string, unknown> }) => new Webhook(secret).verify(r.body, {
  'webhook-id': String(r.headers['webhook-id']), 'webhook-timestamp': String(r.headers['webhook-timestamp']), 'webhook-signature': String(r.headers['webhook-signature']),
});

describe('herald CLI on sqlite', () => {
  let h: TestHerald;
  let env: Record<string, string>;
  const receivers: Receiver[] = [];
  const dirs: string[] = [];

  before(async () => {
    h = await startHerald('sqlite');
    env = { HERALD_URL: h.url, HERALD_ADMIN_TOKEN: ADMIN };
  });
  after(async () => {
    await h.stop();
    await Promise.all(receivers.map((r) => r.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('--help on every command exits 0 and describes it', async () => {
    const commands = [[], ['serve'], ['migrate'], ['listen'], ['send'], ['tenants'], ['tenants', 'create'], ['tenants', 'list'],
      ['deliveries'], ['deliveries', 'list'], ['deliveries', 'show'], ['deliveries', 'retry'], ['verify']];
    const runs = await Promise.all(commands.map((c) => herald([...c, '--help'])));
    runs.forEach((r, i) => {
      assert.equal(r.code, 0, `${commands[i]!.join(' ')} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`Usage: herald ${commands[i]!.join(' ')}`), commands[i]!.join(' '));
    });
    assert.match(runs[1]!.stdout, /HERALD_REQUEST_TIMEOUT_MS/, 'serve --help lists the settings');
    assert.match(runs[3]!.stdout, /--forward-to <url>/);
    assert.match(runs[3]!.stdout, /Example:/);
  });

  test('tenants create shows the credentials once; tenants list shows them in text and JSON', async () => {
    const text = await herald(['tenants', 'create', '--name', 'Acme CLI'], env);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /created tenant \S+ "Acme CLI"/);
    assert.match(text.stdout, /api_token\s+hat_\S+/);
    const json = await herald(['tenants', 'create', '--name', 'Beta CLI', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    const t = JSON.parse(json.stdout);
    assert.equal(t.name, 'Beta CLI');
    assert.match(t.credentials.api_token, /^hat_/);

    const list = await herald(['tenants', 'list'], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^id\s+number\s+name\s+created$/m);
    assert.match(list.stdout, new RegExp(`^${t.id}\\s+${t.number}\\s+Beta CLI\\s`, 'm'));
    assert.doesNotMatch(list.stdout, /hat_/, 'no credentials in a list');
    const listJson = JSON.parse((await herald(['tenants', 'list', '--json'], env)).stdout);
    assert.ok(listJson.data.some((x: any) => x.id === t.id && x.name === 'Beta CLI'));
  });

  test('the admin token is read from a local Herald\'s data dir when none is given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
    dirs.push(dir);
    const none = await herald(['tenants', 'list'], { HERALD_URL: h.url, HERALD_DATA_DIR: dir });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no admin token: pass --token/);
    writeFileSync(join(dir, 'admin-token'), ADMIN + '\n');
    const ok = await herald(['tenants', 'list', '--json'], { HERALD_URL: h.url, HERALD_DATA_DIR: dir });
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(Array.isArray(JSON.parse(ok.stdout).data));
    const wrong = await herald(['tenants', 'list', '--token', 'not-the-token'], { HERALD_URL: h.url, HERALD_DATA_DIR: dir });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /401.*admin token is not valid/);
  });

  test('send publishes, deliveries list shows it, deliveries retry sends it again', async () => {
    const t = await h.tenant('Send');
    const rx = await new Receiver().start();
    receivers.push(rx);
    const ep = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url + '/hook' });
    assert.equal(ep.status, 201);

    const sent = await herald(['send', '--tenant', t.id, '--type', 'Employee.Add', '--entity-id', '42', '--data', '{"name":"José"}'], env);
    assert.equal(sent.code, 0, sent.stderr);
    const m = /^published Employee\.Add (\S+): 1 delivery$/m.exec(sent.stdout);
    assert.ok(m, sent.stdout);
    await rx.waitFor(1);
    assert.equal(rx.json(0).id, m[1]);
    assert.equal(rx.json(0).data.name, 'José');
    verify(ep.body.secret, rx.received[0]!);

    const dir = mkdtempSync(join(tmpdir(), 'herald-cli-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'data.json'), '{"name":"Zoë"}');
    const fromFile = JSON.parse((await herald(['send', '--tenant', t.id, '--type', 'Employee.Update', '--entity-id', '43', '--data-file', join(dir, 'data.json'), '--json'], env)).stdout);
    assert.equal(fromFile.type, 'Employee.Update');
    assert.equal(fromFile.deliveries, 1);
    const fromStdin = JSON.parse((await herald(['send', '--tenant', t.id, '--type', 'Employee.Update', '--entity-id', '44', '--data-file', '-', '--json'], env, '{"name":"Ana"}')).stdout);
    await rx.waitFor(3);
    assert.deepEqual(rx.received.map((r) => JSON.parse(r.body).data.name).sort(), ['Ana', 'José', 'Zoë']);
    assert.ok(rx.received.some((r) => r.headers['webhook-id'] === fromStdin.id));

    await eventually(async () => (await h.admin('GET', `/admin/v1/deliveries?tenant_id=${t.id}`)).body.data.every((d: any) => d.status === 'succeeded'));
    const list = await herald(['deliveries', 'list', '--tenant', t.id], env);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^id\s+status\s+attempts/m);
    const listJson = JSON.parse((await herald(['deliveries', 'list', '--tenant', t.id, '--status', 'succeeded', '--limit', '2', '--json'], env)).stdout);
    assert.equal(listJson.data.length, 2);
    assert.ok(listJson.next_cursor, 'a page of 2 out of 3 has a next page');
    const adds = JSON.parse((await herald(['deliveries', 'list', '--tenant', t.id, '--type', 'Employee.Add', '--json'], env)).stdout);
    assert.deepEqual(adds.data.map((x: any) => x.event_id), [m[1]]);
    assert.match(list.stdout, new RegExp(`\\sEmployee\\.Add\\s+${m[1]}\\s`));
    const d = listJson.data.find((x: any) => x.event_id === fromStdin.id) ?? listJson.data[0];
    assert.match(list.stdout, new RegExp(`^${d.id}\\s+succeeded\\s+1\\s+200\\s`, 'm'));

    const retried = await herald(['deliveries', 'retry', d.id], env);
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, new RegExp(`delivery ${d.id} is due now`));
    await rx.waitFor(4);
    assert.equal(rx.received[3]!.headers['webhook-id'], d.event_id);
    await eventually(async () => (await h.admin('GET', `/admin/v1/deliveries/${d.id}`)).body.attempt_log.length === 2);
    const shown = await herald(['deliveries', 'show', d.id], env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^2\s+\S+ \S+\s+200\s/m);
    const again = JSON.parse((await herald(['deliveries', 'retry', d.id, '--json'], env)).stdout);
    assert.equal(again.id, d.id);
  });

  test('a usage mistake exits 2 naming the option; nothing is sent', async () => {
    const noType = await herald(['send', '--tenant', 'x', '--entity-id', '1'], env);
    assert.equal(noType.code, 2);
    assert.match(noType.stderr, /--type/);
    const badType = await herald(['send', '--tenant', 'x', '--entity-id', '1', '--type', 'EmployeeAdd'], env);
    assert.equal(badType.code, 2);
    assert.match(badType.stderr, /--type.*must be Entity\.Event/);
    const badData = await herald(['send', '--tenant', 'x', '--entity-id', '1', '--type', 'Employee.Add', '--data', '{oops'], env);
    assert.equal(badData.code, 2);
    assert.match(badData.stderr, /--data: not valid JSON/);
    const both = await herald(['send', '--tenant', 'x', '--entity-id', '1', '--type', 'Employee.Add', '--data', '{}', '--data-file', 'f'], env);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--data.*--data-file|--data-file.*--data/);
    const limit = await herald(['deliveries', 'list', '--limit', '0'], env);
    assert.equal(limit.code, 2);
    assert.match(limit.stderr, /--limit.*from 1 to 500/);
    const status = await herald(['deliveries', 'list', '--status', 'lost'], env);
    assert.equal(status.code, 2);
    assert.match(status.stderr, /--status/);
    const url = await herald(['tenants', 'list', '--url', 'ftp://x'], env);
    assert.equal(url.code, 2);
    assert.match(url.stderr, /--url/);
    const unknown = await herald(['tenants', 'remove'], env);
    assert.equal(unknown.code, 2);
    const noCommand = await herald(['deliveries'], env);
    assert.equal(noCommand.code, 2);
    const forward = await herald(['listen', '--token', 't', '--forward-to', 'localhost:3000'], env);
    assert.equal(forward.code, 2);
    assert.match(forward.stderr, /--forward-to/);
  });

  test('a refusal by Herald exits 1 naming the field, in text and in JSON', async () => {
    const text = await herald(['send', '--tenant', 'no-such-tenant', '--type', 'Employee.Add', '--entity-id', '1'], env);
    assert.equal(text.code, 1);
    assert.match(text.stderr, /422: tenant_id tenant no-such-tenant does not exist \(field: tenant_id\)/);
    const t = await h.tenant('Refused');
    const json = await herald(['send', '--tenant', t.id, '--type', 'Employee.Nope', '--entity-id', '1', '--json'], env);
    assert.equal(json.code, 1);
    const e = JSON.parse(json.stderr).error;
    assert.equal(e.status, 422);
    assert.equal(e.field, 'event');
    assert.match(e.message, /Employee\.Nope is not in the event catalog/);
    const missing = await herald(['deliveries', 'retry', '01a20000-0000-7000-8000-000000000000'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /404: delivery not found/);
    const listen = await herald(['listen', '--token', 'hat_wrong', '--forward-to', 'http://127.0.0.1:9/hook'], env);
    assert.equal(listen.code, 1);
    assert.match(listen.stderr, /GET \/api\/v1\/listen was refused with 401: the api_token is not valid/);
    const down = await herald(['tenants', 'list'], { ...env, HERALD_URL: 'http://127.0.0.1:1' });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach Herald at http:\/\/127\.0\.0\.1:1/);
  });

  test('the listen routes refuse bad input naming the field', async () => {
    const t = await h.tenant('ListenInput');
    const tok = t.credentials.api_token;
    assert.equal((await h.call('GET', '/api/v1/listen', null)).status, 401);
    const session = await h.call('GET', '/api/v1/listen?session=../x', tok);
    assert.equal(session.status, 400);
    assert.equal(session.body.error.field, 'session');
    const events = await h.call('GET', '/api/v1/listen?events=Employee', tok);
    assert.equal(events.status, 400);
    assert.equal(events.body.error.field, 'events[0]');
    const unknown = await h.call('GET', '/api/v1/listen?events=Nothing.here', tok);
    assert.equal(unknown.status, 422);
    assert.equal(unknown.body.error.field, 'events');
    const results = (body: unknown) => h.call('POST', '/api/v1/listen/default/results', tok, body);
    const noId = await results({ status_code: 200, duration_ms: 1 });
    assert.equal(noId.status, 400);
    assert.equal(noId.body.error.field, 'request_id');
    const badCode = await results({ request_id: 'x', status_code: 99, duration_ms: 1 });
    assert.equal(badCode.status, 400);
    assert.equal(badCode.body.error.field, 'status_code');
    const extra = await results({ request_id: 'x', status_code: 200, duration_ms: 1, url: 'http://x' });
    assert.equal(extra.status, 400);
    assert.equal(extra.body.error.field, 'url');
    const neither = await results({ request_id: 'x', duration_ms: 1 });
    assert.equal(neither.status, 400);
    assert.equal(neither.body.error.field, 'status_code');
    const nobody = await results({ request_id: 'x', status_code: 200, duration_ms: 1 });
    assert.equal(nobody.status, 404);
    // Refused requests made no subscription.
    assert.deepEqual((await h.call('GET', '/api/v1/endpoints', tok)).body.data, []);
  });

  test('herald listen --json prints one JSON line for the start and one per delivery', async () => {
    const t = await h.tenant('ListenJson');
    const rx = await new Receiver(() => ({ status: 202, body: 'queued' })).start();
    receivers.push(rx);
    const l = new Listener(['--forward-to', rx.url, '--json', '--session', 'json'], { ...env, HERALD_TOKEN: t.credentials.api_token });
    try {
      await eventually(() => l.lines().length >= 1, 10_000, `the ready line (${l.err})`);
      const ready = JSON.parse(l.lines()[0]!);
      assert.equal(ready.type, 'ready');
      assert.equal(ready.session, 'json');
      assert.match(ready.secret, /^whsec_/);
      assert.equal(ready.tenant.id, t.id);
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await eventually(() => l.lines().length >= 2, 10_000, 'the delivery line');
      const line = JSON.parse(l.lines()[1]!);
      assert.equal(line.type, 'delivery');
      assert.equal(line.event_id, ev.id);
      assert.equal(line.event_type, 'Employee.Add');
      assert.equal(line.status_code, 202);
      const d = (await h.admin('GET', `/admin/v1/deliveries?event_id=${ev.id}`)).body.data[0];
      assert.equal(line.delivery_id, d.id);
      verify(ready.secret, rx.received[0]!);
    } finally {
      await l.kill();
    }
  });

  test('a second herald listen of the same session takes it over, and the first stops saying so', async () => {
    const t = await h.tenant('TwoListeners');
    const rx1 = await new Receiver().start();
    const rx2 = await new Receiver().start();
    receivers.push(rx1, rx2);
    const lenv = { ...env, HERALD_TOKEN: t.credentials.api_token };
    const first = new Listener(['--forward-to', rx1.url, '--session', 'shared'], lenv);
    let second: Listener | null = null;
    try {
      await first.secret();
      second = new Listener(['--forward-to', rx2.url, '--session', 'shared'], lenv);
      await second.secret();
      await eventually(() => first.proc.exitCode !== null, 5000, 'the first listen to stop');
      assert.equal(first.proc.exitCode, 1);
      assert.match(first.err, /another herald listen connected with session shared/);
      const ev = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      await rx2.waitFor(1);
      assert.equal(rx2.received[0]!.headers['webhook-id'], ev.id);
      assert.equal(rx1.received.length, 0);
    } finally {
      await first.kill();
      await second?.kill();
    }
  });

  test('a Herald that stops ends its listen streams and pauses their sessions, so what comes before the next start is held', async () => {
    const { env: henv, cleanup } = testEnv('sqlite');
    const start = async () => {
      const x = new Herald(loadConfig(henv));
      await x.start();
      return x;
    };
    const api = async (x: Herald, method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(x.url + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
      return res.json() as Promise<any>;
    };
    let a = await start();
    const t = await api(a, 'POST', '/admin/v1/tenants', ADMIN, { name: 'Restart' });
    const tok = t.credentials.api_token;
    const l = new Listener(['--forward-to', 'http://127.0.0.1:9/hook', '--session', 'restart'], { HERALD_URL: a.url, HERALD_TOKEN: tok });
    try {
      await l.secret();
      const sub = (await api(a, 'GET', '/api/v1/endpoints', tok)).data[0];
      await eventually(async () => (await api(a, 'GET', `/api/v1/endpoints/${sub.id}`, tok)).paused === false, 5000, 'the session unpaused');
      const t0 = Date.now();
      await a.stop();
      assert.ok(Date.now() - t0 < 5000, `stopping took ${Date.now() - t0} ms: an open stream must not hold it`);
      await l.kill();
      a = await start();
      // The new process listens on another port, so nothing reconnected: the pause is the stopping process's.
      assert.equal((await api(a, 'GET', `/api/v1/endpoints/${sub.id}`, tok)).paused, true);
      const ev = await api(a, 'POST', '/admin/v1/events', ADMIN, { tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1' });
      assert.equal((await api(a, 'GET', `/admin/v1/deliveries?event_id=${ev.id}`, ADMIN)).data[0].status, 'held');
    } finally {
      await l.kill();
      await a.stop();
      await cleanup();
    }
  });

  listenSuite(() => h, () => env, receivers);
});

describe('herald listen on postgres', { skip: !pgEnabled && 'PostgreSQL is not enabled (HERALD_TEST_PG=1)' }, () => {
  let h: TestHerald;
  let env: Record<string, string>;
  const receivers: Receiver[] = [];
  before(async () => {
    h = await startHerald('postgres');
    env = { HERALD_URL: h.url };
  });
  after(async () => {
    await h.stop();
    await Promise.all(receivers.map((r) => r.stop()));
  });
  listenSuite(() => h, () => env, receivers);
});

function listenSuite(getH: () => TestHerald, getEnv: () => Record<string, string>, receivers: Receiver[]): void {
  test('herald listen forwards signed deliveries, records them, holds them while it is away, and a 500 is a recorded, retried failure', async () => {
    const h = getH();
    const t = await h.tenant('Listener');
    const rx = await new Receiver().start();
    receivers.push(rx);
    const env = { ...getEnv(), HERALD_TOKEN: t.credentials.api_token };
    const args = ['--forward-to', rx.url + '/hook', '--events', 'Employee.*', '--session', 'laptop'];
    let l = new Listener(args, env);
    try {
      const secret = await l.secret();
      assert.match(secret, /^whsec_/);
      const sub = (await h.call('GET', '/api/v1/endpoints', t.credentials.api_token)).body.data[0];
      assert.equal(sub.url.startsWith('herald-listen://'), true);
      assert.deepEqual(sub.filters, ['Employee.*']);
      await eventually(async () => !(await h.call('GET', `/api/v1/endpoints/${sub.id}`, t.credentials.api_token)).body.paused, 5000, 'the session unpaused');

      const a = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '1', data: { name: 'José' } });
      const b = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: '1' });
      const filtered = await h.publish({ tenant_id: t.id, entity: 'Payroll', event: 'paid', entity_id: '9' });
      assert.equal(filtered.deliveries, 0, 'the session\'s filters apply');
      await rx.waitFor(2);
      for (const r of rx.received) {
        assert.equal(r.path, '/hook');
        verify(secret, r);
      }
      assert.deepEqual(rx.received.map((r) => r.headers['webhook-id']).sort(), [a.id, b.id].sort());
      assert.match(rx.received[0]!.headers['user-agent'] as string, /^Herald\//);
      assert.throws(() => verify('whsec_' + Buffer.alloc(32, 7).toString('base64'), rx.received[0]!), 'a wrong secret does not verify');
      await eventually(() => l.lines().filter((x) => / -> 200 /.test(x)).length === 2, 5000, 'a line per delivery');
      for (const [ev, type] of [[a, 'Employee.Add'], [b, 'Employee.Update']] as const) {
        assert.ok(l.lines().some((x) => x.includes(ev.id) && x.includes(type) && /-> 200\s+\d+ ms$/.test(x)), `${type} line in ${l.out}`);
        await eventually(async () => (await h.admin('GET', `/admin/v1/events/${ev.id}`)).body.deliveries[0]?.status === 'succeeded', 5000, 'recorded as succeeded');
        const d = (await h.admin('GET', `/admin/v1/events/${ev.id}`)).body.deliveries[0];
        assert.equal(d.subscription_id, sub.id);
        assert.equal(d.attempt_log.length, 1);
        assert.equal(d.attempt_log[0].status_code, 200);
        assert.equal(d.attempt_log[0].response_body, 'ok');
      }

      // Away: the session pauses, and what is published meanwhile is held, not lost.
      await l.kill();
      await eventually(async () => (await h.call('GET', `/api/v1/endpoints/${sub.id}`, t.credentials.api_token)).body.paused === true, 5000, 'the session paused');
      const c = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '2' });
      const d2 = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '3' });
      const held = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${sub.id}&status=held`)).body.data;
      assert.deepEqual(held.map((x: any) => x.event_id).sort(), [c.id, d2.id].sort());
      assert.equal(rx.received.length, 2);

      l = new Listener(args, env);
      assert.equal(await l.secret(), secret, 'the same session, the same secret');
      await rx.waitFor(4);
      assert.deepEqual(rx.received.slice(2).map((r) => r.headers['webhook-id']).sort(), [c.id, d2.id].sort());
      for (const r of rx.received.slice(2)) verify(secret, r);
      await eventually(() => l.lines().filter((x) => / -> 200 /.test(x)).length === 2, 5000, 'lines for the held deliveries');
      assert.equal((await h.call('GET', '/api/v1/endpoints', t.credentials.api_token)).body.data.length, 1, 'the session reused its subscription');

      // The local receiver fails: each attempt is recorded with its status and retried.
      rx.respond = (_r, n) => (n <= 6 ? { status: 500, body: 'local bug' } : { status: 200, body: 'ok' });
      const e = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: '4' });
      await eventually(async () => (await h.admin('GET', `/admin/v1/events/${e.id}`)).body.deliveries[0]?.status === 'succeeded', 10_000, 'success after the retries');
      const rec = (await h.admin('GET', `/admin/v1/events/${e.id}`)).body.deliveries[0];
      assert.deepEqual(rec.attempt_log.map((x: any) => x.status_code), [500, 500, 200]);
      assert.equal(rec.attempt_log[0].error_kind, 'http_status');
      assert.equal(rec.attempt_log[0].response_body, 'local bug');
      assert.ok(l.lines().filter((x) => x.includes(e.id) && / -> 500 /.test(x)).length === 2, l.out);
    } finally {
      await l.kill();
    }
  });

  test('a session with no stream, and a stream that does not answer, are recorded failures', async () => {
    const h = getH();
    const t = await h.tenant('Silent');
    const rx = await new Receiver(() => ({ status: 200, body: 'late', delayMs: 5000 })).start();
    receivers.push(rx);
    const env = { ...getEnv(), HERALD_TOKEN: t.credentials.api_token };
    const l = new Listener(['--forward-to', rx.url + '/hook', '--session', 'slow'], env);
    try {
      await l.secret();
      const sub = (await h.call('GET', '/api/v1/endpoints', t.credentials.api_token)).body.data[0];
      await eventually(async () => !(await h.call('GET', `/api/v1/endpoints/${sub.id}`, t.credentials.api_token)).body.paused, 5000, 'the session unpaused');
      // The receiver takes longer than Herald waits (HERALD_REQUEST_TIMEOUT_MS is 3000 in tests): the CLI reports its own timeout.
      const e = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '5' });
      await eventually(async () => ((await h.admin('GET', `/admin/v1/events/${e.id}`)).body.deliveries[0]?.attempt_log.length ?? 0) >= 1, 8000, 'a timed-out attempt');
      const a = (await h.admin('GET', `/admin/v1/events/${e.id}`)).body.deliveries[0].attempt_log[0];
      assert.equal(a.status_code, null);
      assert.equal(a.error_kind, 'timeout');
      assert.ok(a.duration_ms >= 2000 && a.duration_ms <= 3500, `duration ${a.duration_ms}`);
      // A session unpaused by hand with no stream connected: the attempt fails at once as a connection error.
      await l.kill();
      await eventually(async () => (await h.call('GET', `/api/v1/endpoints/${sub.id}`, t.credentials.api_token)).body.paused === true, 5000, 'the session paused');
      assert.equal((await h.call('PATCH', `/api/v1/endpoints/${sub.id}`, t.credentials.api_token, { paused: false })).status, 200);
      const f = await h.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: '6' });
      await eventually(async () => ((await h.admin('GET', `/admin/v1/events/${f.id}`)).body.deliveries[0]?.attempt_log.length ?? 0) >= 1, 5000, 'a failed attempt');
      const fa = (await h.admin('GET', `/admin/v1/events/${f.id}`)).body.deliveries[0].attempt_log[0];
      assert.equal(fa.error_kind, 'connection');
      assert.match(fa.error, /no herald listen stream/);
      await h.call('PATCH', `/api/v1/endpoints/${sub.id}`, t.credentials.api_token, { paused: true });
    } finally {
      await l.kill();
    }
  });
}
