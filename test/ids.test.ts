// Ids sort by creation, also across a restart on a clock that stepped back: Herald seeds its
// id generator from the newest id in the store at start.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { noIdsBefore, uuidv7, uuidv7At, uuidv7Ms } from '../src/domain/ids.ts';
import { openStore } from '../src/store/open.ts';
import { HeraldProcess } from './helpers/child.ts';
import { ADMIN, testEnv } from './helpers/herald.ts';

test('noIdsBefore: ids made after it sort after every id of that millisecond, and uuidv7Ms reads an id\'s time', () => {
  const ahead = Date.now() + 3_600_000;
  const stored = uuidv7At(ahead);
  assert.equal(uuidv7Ms(stored), ahead);
  noIdsBefore(ahead);
  const next = uuidv7();
  assert.ok(next > stored, `${next} after ${stored}`);
  assert.equal(uuidv7Ms(next), ahead + 1);
  // Earlier times change nothing.
  noIdsBefore(ahead - 10_000);
  assert.ok(uuidv7() > next);
});

test('a Herald started on a store holding ids from later than its clock makes ids that sort after them', async () => {
  const { env, cleanup } = testEnv('sqlite');
  let p: HeraldProcess | null = null;
  try {
    // As if another run, on a clock an hour ahead, had published an event.
    const store = await openStore({ databaseUrl: null, databaseSchema: 'public', dataDir: env.HERALD_DATA_DIR! });
    await store.migrate();
    const tenant = await store.createTenant('Ahead', 'client-ahead', { clientSecretHash: 'x', subscriptionKeyHash: 'y', apiTokenHash: 'z' });
    const aheadId = uuidv7At(Date.now() + 3_600_000);
    await store.db.run(
      "INSERT INTO events (id, tenant_id, entity, event, entity_id, data, occurred_at, created_at) VALUES ($1, $2, 'Employee', 'Add', 'e1', '{}', $3, $3)",
      [aheadId, tenant.id, Date.now()],
    );
    await store.close();
    p = await HeraldProcess.start({ ...env, HERALD_PORT: '0' });
    const res = await fetch(`${p.url}/admin/v1/events`, {
      method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ tenant_id: tenant.id, entity: 'Employee', event: 'Add', entity_id: 'e2' }),
    });
    assert.equal(res.status, 202);
    const id = ((await res.json()) as { id: string }).id;
    assert.ok(id > aheadId, `the new event's id ${id} sorts after the stored ${aheadId}`);
  } finally {
    if (p) { p.kill('SIGTERM'); await p.exited; }
    await cleanup();
  }
});
