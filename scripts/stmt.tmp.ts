import { SqliteDb } from '../src/store/sqlite/db.ts';
const stats = new Map<string, { n: number; ms: number }>();
const wrap = (name: 'allNow' | 'runNow') => {
  const orig = (SqliteDb.prototype as any)[name];
  (SqliteDb.prototype as any)[name] = function (sql: string, params: unknown) {
    const t = performance.now();
    try { return orig.call(this, sql, params); } finally {
      const k = sql.replace(/\s+/g, ' ').slice(0, 90);
      const s = stats.get(k) ?? { n: 0, ms: 0 }; s.n++; s.ms += performance.now() - t; stats.set(k, s);
    }
  };
};
wrap('allNow'); wrap('runNow');
const origTx = SqliteDb.prototype.tx;
let txs = 0; let txMs = 0;
(SqliteDb.prototype as any).tx = function (fn: any) { txs++; return origTx.call(this, async (d: any) => { const t = performance.now(); try { return await fn(d); } finally { txMs += performance.now() - t; } }); };
await import('./prof.tmp.ts');
[...stats].sort((a, b) => b[1].ms - a[1].ms).slice(0, 12).forEach(([k, s]) => console.log(s.ms.toFixed(0).padStart(7), 'ms', String(s.n).padStart(7), (s.ms / s.n).toFixed(3).padStart(8), k));
console.log('transactions', txs, 'ms inside', txMs.toFixed(0));
