// Ordered delivery per entity (ordering: "entity"), end to end on each engine: real Heralds,
// real receivers on loopback that check every entity's sequence as it arrives.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, type Env } from '../src/config.ts';
import { Herald, makeLogger } from '../src/herald.ts';
import { ADMIN, startHerald, testEnv, type TestHerald } from './helpers/herald.ts';
import { HeraldProcess } from './helpers/child.ts';
import { engines } from './helpers/pg.ts';
import { eventually, Receiver, sleep, type Received } from './helpers/receiver.ts';

type Answer = { status: number; delayMs?: number };

/**
 * A receiver that knows each event's entity (its type's entity and entity_id) and place
 * (data.seq), and keeps per entity: the places in the order they arrived, how many of that
 * entity were open at once (at most one, for an ordered subscription), and how many of every
 * entity were open at once (more than one shows entities going in parallel).
 */
class LineReceiver {
  readonly rx: Receiver;
  readonly arrivals = new Map<string, number[]>();
  private readonly open = new Map<string, number>();
  private openAll = 0;
  maxOpenPerEntity = 0;
  maxOpenAll = 0;
  /** An attempt that reached the receiver while another of its entity was still open. */
  readonly overlaps: string[] = [];

  constructor(answer: (entity: string, seq: number, attempt: number) => Answer | Promise<Answer> = () => ({ status: 200 })) {
    const attempts = new Map<string, number>();
    this.rx = new Receiver(async (r: Received) => {
      const { entity, seq } = LineReceiver.read(r);
      const n = (this.open.get(entity) ?? 0) + 1;
      if (n > 1) this.overlaps.push(`${entity} #${seq}`);
      this.open.set(entity, n);
      this.maxOpenPerEntity = Math.max(this.maxOpenPerEntity, n);
      this.maxOpenAll = Math.max(this.maxOpenAll, ++this.openAll);
      const list = this.arrivals.get(entity) ?? [];
      list.push(seq);
      this.arrivals.set(entity, list);
      const k = `${entity}#${seq}`;
      attempts.set(k, (attempts.get(k) ?? 0) + 1);
      try {
        const a = await answer(entity, seq, attempts.get(k)!);
        if (a.delayMs) await sleep(a.delayMs);
        return { status: a.status };
      } finally {
        this.open.set(entity, this.open.get(entity)! - 1);
        this.openAll--;
      }
    });
  }

  /** A native body ({ type, data }) or a Paycor-style one ({ EventType, ItemId, ExtendedProperties }). */
  static read(r: Received): { entity: string; seq: number } {
    const b = JSON.parse(r.body);
    if (b.EventType) return { entity: `${String(b.EventType).split('.')[0]}/${b.ItemId}`, seq: Number(b.ExtendedProperties.seq) };
    return { entity: `${String(b.type).split('.')[0]}/${b.data.entity_id}`, seq: Number(b.data.seq) };
  }

  async start(): Promise<this> {
    await this.rx.start();
    return this;
  }

  get url(): string {
    return this.rx.url;
  }

  /** Each entity's places with repeats in a row collapsed (retries, and a resend after a crash). */
  lines(): Map<string, number[]> {
    return new Map([...this.arrivals].map(([e, l]) => [e, l.filter((s, i) => i === 0 || l[i - 1] !== s)]));
  }

  /** Asserts that every entity got exactly 1..n, in order, one at a time. */
  assertInOrder(entities: string[], n: number): void {
    const want = Array.from({ length: n }, (_, i) => i + 1);
    const lines = this.lines();
    for (const e of entities) assert.deepEqual(lines.get(e), want, `${e} arrived in publish order (raw: ${this.arrivals.get(e)?.join(',')})`);
    assert.deepEqual(this.overlaps, [], 'no attempt reached the receiver while another of its entity was open');
    assert.equal(this.maxOpenPerEntity, 1);
  }

  done(entities: string[], n: number): boolean {
    const lines = this.lines();
    return entities.every((e) => (lines.get(e)?.length ?? 0) >= n && lines.get(e)!.at(-1) === n);
  }

  stop(): Promise<void> {
    return this.rx.stop();
  }
}

const ev = (tenantId: string, entityId: string, seq: number) => ({ tenant_id: tenantId, entity: 'Employee', event: 'Update', entity_id: entityId, data: { seq } });

/** `entities` × `n` events, interleaved (every entity's 1, then every entity's 2, ...). */
const interleaved = (tenantId: string, entities: string[], n: number) =>
  Array.from({ length: n }, (_, i) => entities.map((e) => ev(tenantId, e, i + 1))).flat();

const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const names = (entityIds: string[]) => entityIds.map((e) => `Employee/${e}`);

describe('ordering of the seed dialects, a Herald setting', () => {
  test('HERALD_PAYCOR_ORDERING and HERALD_GUSTO_ORDERING take none or entity, none unless set; anything else is refused naming the setting', () => {
    const base = testEnv('sqlite');
    try {
      const c = loadConfig(base.env);
      assert.equal(c.paycorOrdering, 'none');
      assert.equal(c.gustoOrdering, 'none');
      const on = loadConfig({ ...base.env, HERALD_PAYCOR_ORDERING: 'entity', HERALD_GUSTO_ORDERING: ' Entity ' });
      assert.equal(on.paycorOrdering, 'entity');
      assert.equal(on.gustoOrdering, 'entity');
      assert.throws(() => loadConfig({ ...base.env, HERALD_PAYCOR_ORDERING: 'fifo' }), /HERALD_PAYCOR_ORDERING/);
      assert.throws(() => loadConfig({ ...base.env, HERALD_GUSTO_ORDERING: 'yes' }), /HERALD_GUSTO_ORDERING/);
    } finally {
      void base.cleanup();
    }
  });

  test('with HERALD_PAYCOR_ORDERING=entity a Paycor-style registration gets each entity\'s notifications in order, one at a time', async () => {
    const h = await startHerald('sqlite', { HERALD_PAYCOR_ORDERING: 'entity', HERALD_BREAKER_FAILURES: '0' });
    const rx = await new LineReceiver((_e, seq, attempt) => ({ status: seq === 2 && attempt === 1 ? 500 : 200, delayMs: 10 })).start();
    try {
      const t = await h.tenant();
      const tok = await fetch(h.url + '/Accounts/v2/Common/Token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: t.credentials.client_id, client_secret: t.credentials.client_secret, scope: 'openid' }).toString(),
      }).then((r) => r.json() as Promise<any>);
      const reg = await h.call('POST', '/eventsubscriptions/user/registrations', tok.access_token,
        { WebHookUri: rx.url + '/paycor', Description: 'ordered', IsPaused: false, Filters: ['Update'] },
        { 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key });
      assert.equal(reg.status, 201, JSON.stringify(reg.body));
      assert.equal((await h.herald.store.getSubscription(t.id as never, reg.body.Id))?.ordering, 'entity');
      const entities = ids('pc', 4);
      const r = await h.admin('POST', '/admin/v1/events/batch', { events: interleaved(t.id, entities, 4) });
      assert.equal(r.status, 202);
      await eventually(() => rx.done(names(entities), 4), 10_000, 'all delivered');
      rx.assertInOrder(names(entities), 4);
    } finally {
      await rx.stop();
      await h.stop();
    }
  });

  test('with HERALD_GUSTO_ORDERING=entity a verified Gusto-style subscription gets each entity\'s events in order, one at a time', async () => {
    const h = await startHerald('sqlite', { HERALD_GUSTO_ORDERING: 'entity', HERALD_BREAKER_FAILURES: '0' });
    // Every event fails its first attempt: in order, an entity's next event cannot arrive
    // before the one before it has been answered 2xx, so each entity's arrivals come in pairs.
    const seen = new Set<string>();
    const open = new Map<string, number>();
    const arrivals = new Map<string, string[]>();
    let overlaps = 0;
    let token = '';
    const rx = await new Receiver(async (r: Received) => {
      const b = JSON.parse(r.body);
      if (b.verification_token) { token = b.verification_token; return { status: 200, body: 'ok' }; }
      const entity = String(b.entity_uuid);
      if ((open.get(entity) ?? 0) > 0) overlaps++;
      open.set(entity, (open.get(entity) ?? 0) + 1);
      arrivals.set(entity, [...(arrivals.get(entity) ?? []), b.uuid]);
      await sleep(5);
      open.set(entity, open.get(entity)! - 1);
      const first = !seen.has(b.uuid);
      seen.add(b.uuid);
      return { status: first ? 500 : 200, body: first ? 'again' : 'ok' };
    }).start();
    try {
      const t = await h.tenant();
      const gusto = (method: string, path: string, body?: unknown) => h.call(method, path, null, body, { authorization: `Token ${t.credentials.api_token}` });
      const created = await gusto('POST', '/v1/webhook_subscriptions', { url: rx.url + '/gusto', subscription_types: ['Employee'] });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      await eventually(() => token !== '', 10_000, 'the verification token');
      const v = await gusto('PUT', `/v1/webhook_subscriptions/${created.body.uuid}/verify`, { verification_token: token });
      assert.equal(v.status, 200, JSON.stringify(v.body));
      assert.equal((await h.herald.store.getSubscription(t.id as never, created.body.uuid))?.ordering, 'entity');
      const entities = ids('gu', 3);
      const r = await h.admin('POST', '/admin/v1/events/batch', { events: interleaved(t.id, entities, 3) });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      // The answer names the events in the order sent: every entity's first, then every entity's second, ...
      const published = new Map<string, string[]>();
      (r.body.events as { id: string }[]).forEach((e, i) => { const k = entities[i % entities.length]!; published.set(k, [...(published.get(k) ?? []), e.id]); });
      await eventually(() => seen.size === 9 && [...arrivals.values()].every((a) => a.length === 6), 20_000, 'every event twice');
      assert.equal(overlaps, 0, 'never two of one entity open at once');
      for (const e of entities) {
        const a = arrivals.get(e)!;
        assert.deepEqual(a, [a[0], a[0], a[2], a[2], a[4], a[4]], `entity ${e}: each event's retry before the next event (${a.join(' ')})`);
        assert.deepEqual([a[0], a[2], a[4]], published.get(e), `entity ${e} in publish order`);
      }
    } finally {
      await rx.stop();
      await h.stop();
    }
  });
});

for (const engine of engines()) {
  describe(`ordered delivery on ${engine}`, () => {
    let h: TestHerald;
    const receivers: LineReceiver[] = [];
    const receiver = async (answer?: ConstructorParameters<typeof LineReceiver>[0]) => {
      const r = await new LineReceiver(answer).start();
      receivers.push(r);
      return r;
    };
    const endpoint = async (token: string, body: Record<string, unknown>) => {
      const r = await h.call('POST', '/api/v1/endpoints', token, body);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      return r.body;
    };
    const batch = async (events: unknown[]) => {
      const r = await h.admin('POST', '/admin/v1/events/batch', { events });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      return r.body.events as { id: string }[];
    };
    const deliveryOf = async (eventId: string) => (await h.admin('GET', `/admin/v1/events/${eventId}`)).body.deliveries[0];

    before(async () => { h = await startHerald(engine, { HERALD_RETRY_SCHEDULE: '0.05,0.1,0.1', HERALD_RETRY_JITTER: '0', HERALD_BREAKER_FAILURES: '0' }); });
    after(async () => {
      await h.stop();
      await Promise.all(receivers.map((r) => r.stop()));
    });

    test('ordering is none unless asked; entity is kept, shown and changeable; anything else is refused naming the field', async () => {
      const t = await h.tenant();
      const tok = t.credentials.api_token;
      const rx = await receiver();
      assert.equal((await endpoint(tok, { url: rx.url })).ordering, 'none');
      const ep = await endpoint(tok, { url: rx.url, ordering: 'entity' });
      assert.equal(ep.ordering, 'entity');
      assert.equal((await h.call('GET', `/api/v1/endpoints/${ep.id}`, tok)).body.ordering, 'entity');
      for (const bad of ['Entity', 'fifo', 1, true, {}, '']) {
        const r = await h.call('POST', '/api/v1/endpoints', tok, { url: rx.url, ordering: bad });
        assert.equal(r.status, 400, `${JSON.stringify(bad)}: ${JSON.stringify(r.body)}`);
        assert.match(JSON.stringify(r.body), /ordering/);
      }
      const patched = await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, tok, { ordering: 'none' });
      assert.equal(patched.status, 200);
      assert.equal(patched.body.ordering, 'none');
      // A PATCH without it keeps it; a PUT without it sets the default.
      assert.equal((await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, tok, { ordering: 'entity' })).body.ordering, 'entity');
      assert.equal((await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, tok, { description: 'x' })).body.ordering, 'entity');
      assert.equal((await h.call('PUT', `/api/v1/endpoints/${ep.id}`, tok, { url: rx.url })).body.ordering, 'none');
      const list = (await h.call('GET', '/api/v1/endpoints', tok)).body.data;
      assert.deepEqual(list.map((e: any) => e.ordering).sort(), ['none', 'none']);
    });

    test('under retries every entity arrives in publish order, one at a time, while entities overlap', async () => {
      const t = await h.tenant();
      // Fails some attempts of some places a few times; every request is held a little so
      // that attempts to different entities are open together.
      const rx = await receiver((_e, seq, attempt) => ({ status: seq % 3 === 2 && attempt <= 2 ? 500 : 200, delayMs: 15 }));
      await endpoint(t.credentials.api_token, { url: rx.url, ordering: 'entity' });
      const entities = ids('r', 8);
      const n = 8;
      // Half in batches, half one by one, so both publish paths line deliveries up.
      await batch(interleaved(t.id, entities, n / 2));
      for (let i = n / 2; i < n; i++) for (const e of entities) await h.publish(ev(t.id, e, i + 1));
      await eventually(() => rx.done(names(entities), n), 20_000, 'every entity delivered');
      rx.assertInOrder(names(entities), n);
      assert.ok(rx.maxOpenAll > 1, `entities went in parallel (at most ${rx.maxOpenAll} open at once)`);
      // The retries happened: each place failed twice before it got through.
      assert.equal(rx.arrivals.get('Employee/r0')!.filter((s) => s === 2).length, 3);
    });

    test('an unordered endpoint of the same tenant takes the same events all at once', async () => {
      const t = await h.tenant();
      const rx = await receiver(() => ({ status: 200, delayMs: 30 }));
      await endpoint(t.credentials.api_token, { url: rx.url });
      await batch(interleaved(t.id, ['u'], 6));
      await eventually(() => [...rx.arrivals.values()].flat().length === 6, 10_000, 'all six');
      // The same receiver sees one entity's deliveries overlap: what ordering prevents.
      assert.ok(rx.maxOpenPerEntity > 1, 'without ordering one entity has several open at once');
    });

    test('a head that fails for good lets the next through; meanwhile other entities are not held back', async () => {
      const t = await h.tenant();
      let yDone!: () => void;
      const yAll = new Promise<void>((r) => { yDone = r; });
      let yAtFirstAnswer = -1;
      const rx = await receiver(async (entity, seq, attempt) => {
        if (entity === 'Employee/y' && seq === 5) yDone();
        if (entity === 'Employee/x' && seq === 1) {
          // The head's first attempt stays open until the other entity's line is through:
          // had x held y back, this would wait out its bound and the check below would fail.
          if (attempt === 1) {
            await Promise.race([yAll, sleep(2500)]);
            yAtFirstAnswer = rx.lines().get('Employee/y')?.length ?? 0;
          }
          return { status: 500 };
        }
        return { status: 200 };
      });
      await endpoint(t.credentials.api_token, { url: rx.url, ordering: 'entity' });
      const [x1] = await batch([ev(t.id, 'x', 1), ...[1, 2, 3, 4, 5].map((s) => ev(t.id, 'y', s)), ev(t.id, 'x', 2), ev(t.id, 'x', 3)]);
      await eventually(() => rx.done(['Employee/x'], 3), 15_000, 'x through');
      assert.equal(yAtFirstAnswer, 5, 'all of y arrived while x\'s head was open');
      assert.deepEqual(rx.arrivals.get('Employee/x'), [1, 1, 1, 1, 2, 3], 'the head took its four attempts, then the rest followed');
      rx.assertInOrder(['Employee/y'], 5);
      assert.deepEqual(rx.overlaps, []);
      const d = await deliveryOf(x1!.id);
      assert.equal(d.status, 'failed');
      assert.equal(d.attempts, 4);
    });

    test('a failed delivery sent again by hand joins the end of its entity\'s line', async () => {
      const t = await h.tenant();
      let retried!: Promise<unknown>;
      let x1Id = '';
      const rx = await receiver(async (entity, seq) => {
        if (seq === 1 && entity === 'Employee/m') return { status: 500 };
        if (seq === 2 && entity === 'Employee/m' && !retried) {
          // While 2 is open, the failed 1 is sent again: it must wait for 2 and 3.
          retried = h.admin('POST', `/admin/v1/deliveries/${x1Id}/retry`);
          await retried;
          return { status: 200, delayMs: 50 };
        }
        return { status: 200 };
      });
      const ep = await endpoint(t.credentials.api_token, { url: rx.url, ordering: 'entity', paused: true });
      const [m1] = await batch([1, 2, 3].map((s) => ev(t.id, 'm', s)));
      x1Id = (await deliveryOf(m1!.id)).id;
      // Resumed: 1 fails four times, for good, then 2 goes out.
      assert.equal((await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token, { paused: false })).status, 200);
      await eventually(() => (rx.arrivals.get('Employee/m') ?? []).includes(3) && rx.arrivals.get('Employee/m')!.at(-1) === 1, 15_000, 'm resent');
      assert.equal(((await retried) as { status: number }).status, 202);
      assert.deepEqual(rx.lines().get('Employee/m'), [1, 2, 3, 1]);
      assert.deepEqual(rx.overlaps, []);
    });

    test('a paused ordered endpoint holds every entity\'s line; resumed, each goes in order', async () => {
      const t = await h.tenant();
      const rx = await receiver(() => ({ status: 200, delayMs: 5 }));
      const ep = await endpoint(t.credentials.api_token, { url: rx.url, ordering: 'entity', paused: true });
      const entities = ids('p', 4);
      await batch(interleaved(t.id, entities, 5));
      await sleep(100);
      assert.equal(rx.rx.received.length, 0, 'nothing is sent while paused');
      await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token, { paused: false });
      await eventually(() => rx.done(names(entities), 5), 10_000, 'all resumed');
      rx.assertInOrder(names(entities), 5);
    });
  });

  describe(`ordered delivery across processes on ${engine}`, () => {
    const call = async (base: string, method: string, path: string, token: string, body?: unknown) => {
      const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    };
    const setup = async (base: string, url: string) => {
      const t = (await call(base, 'POST', '/admin/v1/tenants', ADMIN, { name: 'Acme' })).body;
      const ep = await call(base, 'POST', '/api/v1/endpoints', t.credentials.api_token, { url, ordering: 'entity' });
      assert.equal(ep.status, 201, JSON.stringify(ep.body));
      return t;
    };
    /** A Herald in this process on the same store as a child (one process start fewer). */
    const inProcess = async (env: Env) => {
      const config = loadConfig({ ...env, HERALD_PORT: '0' });
      const herald = new Herald(config, makeLogger(config.logLevel));
      await herald.start();
      return herald;
    };
    // Short leases, so that what was in flight at a kill is due again soon after the restart.
    const fast = { HERALD_LEASE_SECONDS: '1.5', HERALD_REQUEST_TIMEOUT_MS: '500', HERALD_RETRY_SCHEDULE: '0.05,0.1', HERALD_RETRY_JITTER: '0', HERALD_POLL_INTERVAL_MS: '100', HERALD_BREAKER_FAILURES: '0' };

    test('kill -9 mid-run, restart: every entity still arrives in order, one at a time', async () => {
      const rx = await new LineReceiver((_e, seq, attempt) => ({ status: seq % 5 === 3 && attempt === 1 ? 503 : 200, delayMs: 3 })).start();
      const { env, cleanup } = testEnv(engine, fast);
      try {
        const p = await HeraldProcess.start(env);
        const t = await setup(p.url, rx.url);
        const entities = ids('k', 10);
        const n = 10;
        const r = await call(p.url, 'POST', '/admin/v1/events/batch', ADMIN, { events: interleaved(t.id, entities, n) });
        assert.equal(r.status, 202);
        await rx.rx.waitFor(25, 15_000);
        p.kill('SIGKILL');
        assert.equal((await p.exited).signal, 'SIGKILL');
        assert.ok(!rx.done(names(entities), n), 'the kill came with work left to do');
        // The restart: a Herald on the same store, in this process.
        const again = await inProcess(env);
        try {
          await eventually(() => rx.done(names(entities), n), 20_000, 'every entity delivered after the restart');
        } finally {
          await again.stop();
        }
        // A delivery in flight at the kill may arrive again (at least once): only ever right
        // after itself, so the collapsed lines are exact.
        rx.assertInOrder(names(entities), n);
      } finally {
        await rx.stop();
        await cleanup();
      }
    });

    // Defined only where it applies, so that no run reports it skipped.
    if (engine === 'postgres') test('two processes on PostgreSQL share the lines: publishes alternate between them, both deliver, order holds', async () => {
      const rx = await new LineReceiver((_e, seq, attempt) => ({ status: seq % 4 === 2 && attempt === 1 ? 500 : 200, delayMs: 2 })).start();
      const { env, cleanup } = testEnv(engine, fast);
      let child: HeraldProcess | null = null;
      let here: Herald | null = null;
      try {
        [child, here] = await Promise.all([HeraldProcess.start(env), inProcess(env)]);
        const procs = [{ url: child.url }, { url: here.url }];
        const t = await setup(procs[0]!.url, rx.url);
        const entities = ids('w', 8);
        const n = 8;
        // Each entity's events one after another, each to the other process than the last;
        // the entities all at once, so the two processes publish to the store together.
        await Promise.all(entities.map(async (e) => {
          for (let s = 1; s <= n; s++) {
            const r = await call(procs[s % 2]!.url, 'POST', '/admin/v1/events', ADMIN, ev(t.id, e, s));
            assert.equal(r.status, 202, JSON.stringify(r.body));
          }
        }));
        await eventually(() => rx.done(names(entities), n), 20_000, 'every entity delivered');
        rx.assertInOrder(names(entities), n);
        const workers = new Set<string>();
        const page = await call(procs[0]!.url, 'GET', `/admin/v1/deliveries?tenant_id=${t.id}&limit=500`, ADMIN);
        assert.equal(page.body.data.length, entities.length * n);
        for (const d of page.body.data) {
          const full = await call(procs[0]!.url, 'GET', `/admin/v1/deliveries/${d.id}`, ADMIN);
          for (const a of full.body.attempt_log ?? []) if (a.worker) workers.add(a.worker);
        }
        assert.equal(workers.size, 2, `both processes delivered (${[...workers].join(', ')})`);
      } finally {
        if (child) { child.kill('SIGTERM'); await child.exited; }
        await here?.stop();
        await rx.stop();
        await cleanup();
      }
    });
  });
}
