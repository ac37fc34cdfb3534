// Auto-disable in every dialect: a subscription failing for long enough (in attempts and in
// time) is taken out of service, the tenant's other subscriptions are told by a notice,
// what waited is held, and each dialect's way of turning it back on sends what was held.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, type TestHerald } from './helpers/herald.ts';
import { engines } from './helpers/pg.ts';
import { eventually, Receiver, sleep } from './helpers/receiver.ts';

const FAILURES = 3;
const AFTER_MS = 300;

for (const engine of engines()) {
  describe(`auto-disable on ${engine}`, () => {
    let h: TestHerald;
    const receivers: Receiver[] = [];
    const receiver = async (respond?: ConstructorParameters<typeof Receiver>[0]) => { const r = await new Receiver(respond).start(); receivers.push(r); return r; };
    before(async () => {
      // Eight retries 100 ms apart: the run reaches 3 failures at 200 ms and spans 300 ms at the fourth attempt, long before retries run out.
      h = await startHerald(engine, {
        HERALD_AUTO_DISABLE_FAILURES: String(FAILURES), HERALD_AUTO_DISABLE_AFTER_SECONDS: String(AFTER_MS / 1000),
        HERALD_RETRY_SCHEDULE: '0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1', HERALD_RETRY_JITTER: '0', HERALD_POLL_INTERVAL_MS: '50',
      });
    });
    after(async () => { await h.stop(); await Promise.all(receivers.map((r) => r.stop())); });

    /** A tenant with a healthy native endpoint that hears the notices. */
    async function withWitness() {
      const t = await h.tenant();
      const witness = await receiver();
      const r = await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: witness.url });
      assert.equal(r.status, 201);
      const notices = () => witness.received.filter((x) => JSON.parse(x.body).type === '$herald.subscription_disabled').map((x) => JSON.parse(x.body).data);
      return { t, witness, notices };
    }

    /** A receiver that fails while `down`, and the entity ids it got. */
    async function flaky() {
      const state = { down: false };
      const rx = await receiver(() => ({ status: state.down ? 500 : 200 }));
      return { rx, state };
    }

    const publish = (tenantId: string, entityId: string) => h.publish({ tenant_id: tenantId, entity: 'Employee', event: 'Add', entity_id: entityId });

    /**
     * From Herald's own ledger: the run of failed attempts before the subscription was taken
     * out of service (its updated_at) holds at least FAILURES attempts and began at least
     * AFTER_MS before; and it was disabled before the delivery ran out of retries.
     */
    async function checkRun(subscriptionId: string, since = 0) {
      const db = h.herald.store.db;
      const [s] = await db.all('SELECT updated_at FROM subscriptions WHERE id = $1', [subscriptionId]);
      const at = Number(s!.updated_at);
      const attempts = await db.all('SELECT started_at, status_code FROM attempts WHERE subscription_id = $1 AND started_at <= $2 AND started_at >= $3 ORDER BY id', [subscriptionId, at, since]);
      const ok = (a: any) => a.status_code !== null && Number(a.status_code) >= 200 && Number(a.status_code) < 300;
      const run = attempts.slice(attempts.findLastIndex(ok) + 1);
      assert.ok(run.length >= FAILURES, `disabled after ${run.length} failed attempts`);
      assert.ok(at - Number(run[0]!.started_at) >= AFTER_MS, `the run spanned ${at - Number(run[0]!.started_at)} ms`);
      const failed = await db.all("SELECT id FROM deliveries WHERE subscription_id = $1 AND status = 'failed'", [subscriptionId]);
      assert.equal(failed.length, 0, 'disabled before a delivery ran out of retries');
    }

    test('native: disabled, notice to the tenant\'s other endpoint, held, PATCH paused:false sends what was held; the run starts again after', async () => {
      const { t, notices } = await withWitness();
      const { rx, state } = await flaky();
      const ep = (await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url })).body;
      const get = async () => (await h.call('GET', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token)).body;
      state.down = true;
      await publish(t.id, 'n1');
      await eventually(async () => (await get()).status === 'disabled', 10_000, 'disabled');
      assert.equal((await get()).paused, true);
      await checkRun(ep.id);
      await eventually(() => notices().length === 1, 5000, 'notice');
      const n = notices()[0];
      assert.deepEqual([n.subscription_id, n.dialect, n.status, n.reason, n.entity_id], [ep.id, 'native', 'disabled', 'consecutive_failures', ep.id]);
      assert.ok(n.failures >= FAILURES);
      const seen = rx.received.length;
      await publish(t.id, 'n2');
      await sleep(300);
      assert.equal(rx.received.length, seen, 'nothing goes to a disabled endpoint');
      const held = (await h.admin('GET', `/admin/v1/deliveries?subscription_id=${ep.id}&status=held`)).body.data;
      assert.equal(held.length, 2, 'the retrying delivery and the new one are held, not cancelled');

      state.down = false;
      const on = await h.call('PATCH', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token, { paused: false });
      assert.deepEqual([on.body.status, on.body.paused], ['active', false]);
      await rx.waitFor(seen + 2);
      assert.deepEqual(rx.received.slice(seen).map((r) => JSON.parse(r.body).data.entity_id).sort(), ['n1', 'n2']);

      // A new long run disables it again (counted from the successes after re-enabling); the operator resumes it.
      const before = rx.received.length;
      state.down = true;
      await publish(t.id, 'n3');
      await eventually(async () => (await get()).status === 'disabled', 10_000, 'disabled again');
      await checkRun(ep.id);
      await eventually(() => notices().length === 2, 5000, 'second notice');
      state.down = false;
      const n3 = () => rx.received.filter((r) => JSON.parse(r.body).data.entity_id === 'n3').length;
      const tries = n3();
      const resumed = await h.admin('POST', `/admin/v1/subscriptions/${ep.id}/resume`);
      assert.deepEqual([resumed.status, resumed.body.status, resumed.body.paused], [200, 'active', false]);
      await eventually(() => n3() === tries + 1, 5000, 'n3 sent again on resume');
      // The operator's side: the count of subscriptions taken out of service, by dialect.
      const metrics = await (await fetch(h.url + '/metrics')).text();
      assert.match(metrics, /^herald_subscriptions_auto_disabled_total\{dialect="native"\} 2$/m);
    });

    test('paycor: disabled (IsPaused true), notice, held, PUT IsPaused:false sends what was held', async () => {
      const { t, notices } = await withWitness();
      const { rx, state } = await flaky();
      const tok = await fetch(h.url + '/Accounts/v2/Common/Token', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: t.credentials.client_id, client_secret: t.credentials.client_secret }).toString(),
      }).then((r) => r.json() as Promise<any>);
      const api = (method: string, path: string, body?: unknown) => h.call(method, path, tok.access_token, body, { 'Ocp-Apim-Subscription-Key': t.credentials.subscription_key });
      const reg = (await api('POST', '/eventsubscriptions/user/registrations', { WebHookUri: rx.url, IsPaused: false, Filters: ['Add'] })).body;
      assert.ok(reg.Id, JSON.stringify(reg));
      const get = async () => (await api('GET', `/eventsubscriptions/user/registrations/${reg.Id}`)).body;
      state.down = true;
      await publish(t.id, 'p1');
      await eventually(async () => (await get()).IsPaused === true, 10_000, 'paused by Herald');
      await checkRun(reg.Id);
      await eventually(() => notices().length === 1, 5000, 'notice');
      assert.deepEqual([notices()[0].subscription_id, notices()[0].dialect, notices()[0].status], [reg.Id, 'paycor', 'disabled']);
      const seen = rx.received.length;
      await publish(t.id, 'p2');
      await sleep(300);
      assert.equal(rx.received.length, seen);
      // Turned back on while the receiver is still down: the old run does not count, so it takes a whole new run to disable it again.
      const reEnabledAt = Date.now();
      const body = { Id: reg.Id, WebHookUri: rx.url, IsPaused: false, Filters: ['Add'] };
      assert.equal((await api('PUT', `/eventsubscriptions/user/registrations/${reg.Id}`, body)).status, 200);
      await eventually(async () => (await get()).IsPaused === true, 10_000, 'paused again');
      await checkRun(reg.Id, reEnabledAt);
      const again = rx.received.length;
      state.down = false;
      const put = await api('PUT', `/eventsubscriptions/user/registrations/${reg.Id}`, body);
      assert.equal(put.status, 200, JSON.stringify(put.body));
      await rx.waitFor(again + 2);
      assert.deepEqual(rx.received.slice(again).map((r) => JSON.parse(r.body).ItemId).sort(), ['p1', 'p2']);
    });

    test('gusto: unreachable, notice, the failing delivery held and sent on re-verification; none made while unreachable', async () => {
      const { t, notices } = await withWitness();
      const { rx, state } = await flaky();
      const api = (method: string, path: string, body?: unknown) => h.call(method, path, null, body, { authorization: `Token ${t.credentials.api_token}` });
      const created = (await api('POST', '/v1/webhook_subscriptions', { url: rx.url, subscription_types: ['Employee'] })).body;
      await rx.waitFor(1);
      const token = JSON.parse(rx.received[0]!.body).verification_token;
      assert.equal((await api('PUT', `/v1/webhook_subscriptions/${created.uuid}/verify`, { verification_token: token })).body.status, 'verified');
      const get = async () => (await api('GET', `/v1/webhook_subscriptions/${created.uuid}`)).body;
      state.down = true;
      await publish(t.id, 'g1');
      await eventually(async () => (await get()).status === 'unreachable', 10_000, 'unreachable');
      await checkRun(created.uuid);
      await eventually(() => notices().length === 1, 5000, 'notice');
      assert.deepEqual([notices()[0].subscription_id, notices()[0].dialect, notices()[0].status], [created.uuid, 'gusto', 'unreachable']);
      const seen = rx.received.length;
      await publish(t.id, 'g2');
      await sleep(300);
      assert.equal(rx.received.length, seen, 'nothing pushed while unreachable');
      state.down = false;
      const v = await api('PUT', `/v1/webhook_subscriptions/${created.uuid}/verify`, { verification_token: token });
      assert.equal(v.body.status, 'verified');
      await rx.waitFor(seen + 1);
      await sleep(300);
      assert.deepEqual(rx.received.slice(seen).map((r) => JSON.parse(r.body).entity_uuid), ['g1'], 'the held one, and not the one published while unreachable (read it from the events API)');
      const events = (await api('GET', '/v1/events')).body.map((e: any) => e.entity_uuid);
      assert.ok(events.includes('g2'), 'g2 is in the events API');
    });

    test('a run a success did not end (recorded elsewhere) is checked against the attempts before it disables', async () => {
      const t = await h.tenant();
      const { rx, state } = await flaky();
      const ep = (await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url })).body;
      await publish(t.id, 'ok');
      await rx.waitFor(1);
      const db = h.herald.store.db;
      await eventually(async () => (await db.all("SELECT 1 FROM attempts WHERE subscription_id = $1 AND status_code = 200", [ep.id])).length === 1, 5000, 'success recorded');
      // As if another process's success had not ended a long run that began well before it.
      await db.run('UPDATE subscriptions SET failure_streak = 100, failing_since = $2 WHERE id = $1', [ep.id, Date.now() - 60_000]);
      state.down = true;
      await publish(t.id, 'f');
      const get = async () => (await h.call('GET', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token)).body;
      await eventually(async () => (await get()).status === 'disabled', 10_000, 'a real run still disables it');
      // Taken at its word, the stale run would have disabled it at the first failure; recounted from the success, it took a whole run.
      await checkRun(ep.id);
    });

    test('off when HERALD_AUTO_DISABLE_FAILURES is 0: a long run of failures leaves the subscription on', async () => {
      const off = await startHerald(engine, { HERALD_AUTO_DISABLE_FAILURES: '0', HERALD_RETRY_SCHEDULE: '0.05,0.05,0.05,0.05,0.05', HERALD_RETRY_JITTER: '0' });
      try {
        const t = await off.tenant();
        const rx = await receiver(() => ({ status: 500 }));
        const ep = (await off.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url })).body;
        await off.publish({ tenant_id: t.id, entity: 'Employee', event: 'Add', entity_id: 'x' });
        await rx.waitFor(6);
        await sleep(200);
        assert.equal((await off.call('GET', `/api/v1/endpoints/${ep.id}`, t.credentials.api_token)).body.status, 'active');
      } finally {
        await off.stop();
      }
    });
  });
}
