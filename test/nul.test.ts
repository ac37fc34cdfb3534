// U+0000 in any path, query or body text is a 400 naming the field, on both engines: PostgreSQL
// cannot store NUL in text, and before this rule its write failure answered 500.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { nulField } from '../src/http/schemaValidator.ts';
import { engines } from './helpers/pg.ts';
import { startHerald, type TestHerald } from './helpers/herald.ts';

test('nulField names the first string or key holding NUL, however deep', () => {
  assert.equal(nulField({ a: 'x', b: ['ok', 'n\u0000'] }), 'b[1]');
  assert.equal(nulField({ events: [{ data: { ['k\u0000']: 1 } }] }), 'events[0].data.k\u0000');
  assert.equal(nulField('\u0000'), '');
  assert.equal(nulField({ a: 'clean', b: [1, null, { c: 'é' }] }), null);
  let deep: unknown = 'bottom\u0000';
  for (let i = 0; i < 10_000; i++) deep = [deep];
  assert.equal(typeof nulField(deep), 'string', 'a deep body neither overflows the stack nor passes');
});

for (const engine of engines()) {
  describe(`NUL characters on ${engine}`, () => {
    let h: TestHerald;
    let tenant: Awaited<ReturnType<TestHerald['tenant']>>;
    before(async () => {
      h = await startHerald(engine);
      tenant = await h.tenant('Nul');
    });
    after(async () => h.stop());

    const cases: [string, string, unknown, string][] = [
      ['GET', '/admin/v1/subscriptions?cursor=%00', undefined, 'cursor'],
      ['GET', '/admin/v1/subscriptions?tenant_id=%00', undefined, 'tenant_id'],
      ['GET', '/admin/v1/deliveries?tenant_id=%00', undefined, 'tenant_id'],
      ['GET', '/admin/v1/deliveries/%00', undefined, 'id'],
      ['GET', '/admin/v1/tenants/%00', undefined, 'id'],
      ['POST', '/admin/v1/subscriptions/%00/pause', undefined, 'id'],
      ['POST', '/admin/v1/portal-links', { tenant_id: 'a\u0000b' }, 'tenant_id'],
      ['POST', '/admin/v1/tenants', { name: 'A\u0000' }, 'name'],
    ];
    for (const [method, path, body, field] of cases) {
      test(`${method} ${path} ${body ? JSON.stringify(body) : ''}: 400 naming ${field}`, async () => {
        const r = await h.admin(method, path, body);
        assert.equal(r.status, 400, JSON.stringify(r.body));
        assert.equal(r.body.error.field, field);
      });
    }

    test('the native API too, and nothing is written', async () => {
      const token = tenant.credentials.api_token;
      const got = await h.call('GET', '/api/v1/endpoints/%00', token);
      assert.equal(got.status, 400);
      assert.equal(got.body.error.field, 'id');
      const made = await h.call('POST', '/api/v1/endpoints', token, { url: 'http://127.0.0.1:9/x', description: 'a\u0000' });
      assert.equal(made.status, 400);
      assert.equal(made.body.error.field, 'description');
      assert.equal((await h.call('GET', '/api/v1/endpoints', token)).body.data.length, 0);
    });
  });
}
