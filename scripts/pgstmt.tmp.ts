import { PostgresDb } from '../src/store/postgres/db.ts';
const stats = new Map<string, { n: number; ms: number }>();
for (const name of ['all', 'run'] as const) {
  const orig = (PostgresDb.prototype as any)[name];
  (PostgresDb.prototype as any)[name] = async function (sql: string, params: unknown) {
    const t = performance.now();
    try { return await orig.call(this, sql, params); } finally {
      const k = sql.replace(/\s+/g, ' ').slice(0, 80);
      const s = stats.get(k) ?? { n: 0, ms: 0 }; s.n++; s.ms += performance.now() - t; stats.set(k, s);
    }
  };
}
const origTx = PostgresDb.prototype.tx;
let txs = 0;
(PostgresDb.prototype as any).tx = function (fn: any) { txs++; return origTx.call(this, fn); };
process.env.PROF_ENGINE = 'postgres';
await import('./prof.tmp.ts');
console.log('transactions', txs);
[...stats].sort((a, b) => b[1].ms - a[1].ms).slice(0, 14).forEach(([k, s]) => console.log(s.ms.toFixed(0).padStart(7), 'ms', String(s.n).padStart(7), (s.ms / s.n).toFixed(3).padStart(8), k));
