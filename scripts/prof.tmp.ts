import { startHerald } from '../test/helpers/herald.ts';
import { Receiver } from '../test/helpers/receiver.ts';
const h = await startHerald((process.env.PROF_ENGINE as 'postgres') ?? 'sqlite', { HERALD_LOG_LEVEL: 'warn' });
const rx = await new Receiver(() => ({ status: 204 })).start();
const t = await h.tenant();
await h.call('POST', '/api/v1/endpoints', t.credentials.api_token, { url: rx.url });
const t0 = performance.now();
const mem = () => { const m = process.memoryUsage(); return `rss ${Math.round(m.rss/1e6)} heapUsed ${Math.round(m.heapUsed/1e6)} heapTotal ${Math.round(m.heapTotal/1e6)} external ${Math.round(m.external/1e6)} buffers ${Math.round(m.arrayBuffers/1e6)}`; };
const timer = setInterval(() => console.log(mem()), 500);
for (let b = 0; b < 20; b++) {
  const events = Array.from({ length: 1000 }, (_, i) => ({ tenant_id: t.id, entity: 'Employee', event: 'Update', entity_id: String(i), data: { pad: 'x'.repeat(800) } }));
  const r = await h.admin('POST', '/admin/v1/events/batch', { events });
  if (r.status !== 202) throw new Error(JSON.stringify(r.body));
}
const t1 = performance.now();
await rx.waitFor(20000, 120_000);
const t2 = performance.now();
console.log('publish ms', Math.round(t1 - t0), 'deliver all ms', Math.round(t2 - t0), 'rate', Math.round(20000 / ((t2 - t0) / 1000)), 'rss MB', Math.round(process.memoryUsage().rss / 1e6));
clearInterval(timer); globalThis.gc?.(); console.log('after gc', mem());
await h.stop(); await rx.stop();
