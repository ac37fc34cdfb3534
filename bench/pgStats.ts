// The bench's PostgreSQL: a private server of its own when it can run one (root, initdb), so
// that what the server does per delivery can be counted without touching the machine's shared
// server: statements (pg_stat_statements, which needs shared_preload_libraries), WAL bytes
// (pg_current_wal_lsn), row and index writes (pg_stat_user_tables, index sizes) and the
// server's CPU (its own processes only). Otherwise the shared server at PG_URL, with the CPU of
// every postgres process on the machine and no statement counts.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { PrivatePg, privatePgUnavailable } from '../test/helpers/privatePg.ts';

/** Linux's USER_HZ: the unit of utime and stime in /proc/PID/stat. */
const CLOCK_TICKS = 100;

/**
 * CPU seconds process `pid` has used (utime + stime, fields 14 and 15 of proc(5)), and with
 * `reaped` what its exited children used too (cutime + cstime, 16 and 17).
 */
export function procCpuSeconds(pid: number | string, reaped = false): number {
  // Fields counted from after the command name, which may hold spaces: 14 is at 11.
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ').map(Number);
  return (f[11]! + f[12]! + (reaped ? f[13]! + f[14]! : 0)) / CLOCK_TICKS;
}

/** The parent pid of `pid` (field 4 of proc(5)). */
function ppidOf(pid: string): number {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')[1]);
}

/**
 * The server settings of the shared server on 5432 that differ from initdb's defaults (read with
 * `SELECT name, setting FROM pg_settings WHERE source = 'configuration file'`), so that the private
 * server is tuned the same; plus pg_stat_statements. PrivatePg's own fsync=off is overridden.
 */
const SHARED_TUNING = {
  fsync: 'on', autovacuum: 'off', shared_buffers: '128MB', max_connections: 100, max_wal_size: '1GB', min_wal_size: '80MB',
};
const PRIVATE_SETTINGS: Record<string, string | number> = {
  ...SHARED_TUNING,
  shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.max': 2000, 'pg_stat_statements.track_utility': 'on',
  // BENCH_PG_SETTINGS="autovacuum=on fillfactor..." tries other settings on the private server.
  ...Object.fromEntries((process.env.BENCH_PG_SETTINGS ?? '').split(/\s+/).filter(Boolean).map((kv) => kv.split('=', 2) as [string, string])),
};

/** The role Herald connects as on the private server: pg_stat_statements is read for it alone, not for the bench's own queries. */
const HERALD_ROLE = 'herald';

export interface Statement { query: string; calls: number; totalMs: number; meanMs: number; rows: number; walBytes: number; sharedBlks: number }

export interface PgCost {
  deliveries: number;
  /** All statements Herald ran (BEGIN and COMMIT included), per delivery. */
  statementsPerDelivery: number | null;
  walBytesPerDelivery: number;
  /** Full-page images in the WAL, per delivery (the first change to a page after a checkpoint). */
  walFpiPerDelivery: number | null;
  byTable: Record<string, { ins: number; upd: number; hotUpd: number; del: number; hotShare: number | null }>;
  /** Row versions written per delivery (inserts and updates), and the share of updates that were HOT. */
  heapWritesPerDelivery: number;
  hotShare: number | null;
  /**
   * Index entries written per delivery into indexes that are not partial: each insert and
   * non-HOT update writes one into every such index of its table.
   */
  indexEntriesPerDelivery: number;
  /** Per index: entries written (null for a partial index), growth in bytes and scans, per delivery. */
  byIndex: Record<string, { table: string; partial: boolean; entriesPerDelivery: number | null; bytesPerDelivery: number; scansPerDelivery: number }>;
  top: { byCalls: Statement[]; byTime: Statement[] };
}

interface Snapshot {
  lsn: string;
  fpi: number | null;
  tables: Map<string, { ins: number; upd: number; hot: number; del: number }>;
  indexes: Map<string, { bytes: number; scans: number }>;
}

export class BenchPg {
  /** The URL Herald connects with. */
  readonly url: string;
  /** Whether this is the bench's own server (statements counted, CPU of its processes alone). */
  readonly private: boolean;
  readonly why: string;
  private readonly server: PrivatePg | null;
  private readonly admin: pg.Pool;

  private constructor(url: string, adminUrl: string, server: PrivatePg | null, why: string) {
    this.url = url;
    this.server = server;
    this.private = server !== null;
    this.why = why;
    this.admin = new pg.Pool({ connectionString: adminUrl, max: 2 });
    this.admin.on('error', () => undefined);
  }

  /** The private server unless `shared` or it cannot run here; null when no PostgreSQL can be reached. */
  static async open(sharedUrl: string, shared: boolean): Promise<BenchPg | null> {
    const cannot = shared ? 'asked for the shared server (--shared-pg)' : privatePgUnavailable();
    if (cannot === null) {
      const server = await PrivatePg.create(PRIVATE_SETTINGS);
      const c = new pg.Client({ connectionString: server.url });
      await c.connect();
      await c.query(`CREATE ROLE ${HERALD_ROLE} LOGIN`);
      await c.query(`CREATE DATABASE bench OWNER ${HERALD_ROLE}`);
      await c.end();
      const adminUrl = server.url.replace(/\/postgres$/, '/bench');
      const extra = process.env.BENCH_PG_SETTINGS ? `; BENCH_PG_SETTINGS: ${process.env.BENCH_PG_SETTINGS}` : '';
      const b = new BenchPg(`postgres://${HERALD_ROLE}@127.0.0.1:${server.port}/bench`, adminUrl, server, `private server on port ${server.port} (${Object.entries(SHARED_TUNING).map(([k, v]) => `${k}=${v}`).join(' ')}, as the shared one${extra})`);
      await b.admin.query('CREATE EXTENSION pg_stat_statements');
      return b;
    }
    const c = new pg.Client({ connectionString: sharedUrl, connectionTimeoutMillis: 2000 });
    try {
      await c.connect();
    } catch {
      return null;
    } finally {
      await c.end().catch(() => undefined);
    }
    return new BenchPg(sharedUrl, sharedUrl, null, `shared server ${sharedUrl.replace(/^.*@/, '')}: ${cannot}; statements not counted`);
  }

  /** A session as Herald connects (its statements are counted), with `schema` first on the search path. */
  async connect(schema: string): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: this.url, options: `-c search_path=${schema}` });
    await c.connect();
    return c;
  }

  /**
   * What one round trip to the server costs on this machine now: `n` prepared `SELECT $1` one
   * after another on one session over Herald's URL: each one's wall time (µs, sorted) and the
   * client's CPU (user + system) per query. A baseline for the latency run, whose every publish,
   * claim and outcome is such a round trip: it moved by more than 5× between days here.
   */
  async roundTrip(n = 2000): Promise<{ sortedUs: number[]; clientCpuUs: number }> {
    const c = new pg.Client({ connectionString: this.url });
    await c.connect();
    try {
      const q = (i: number) => c.query({ name: 'bench_round_trip', text: 'SELECT $1::int AS i', values: [i] });
      for (let i = 0; i < 100; i++) await q(i);
      const times: number[] = [];
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await q(i);
        times.push((performance.now() - t) * 1000);
      }
      const cpu = process.cpuUsage(cpu0);
      return { sortedUs: times.sort((a, b) => a - b), clientCpuUs: (cpu.user + cpu.system) / n };
    } finally {
      await c.end();
    }
  }

  query<T extends pg.QueryResultRow = any>(sql: string, params?: unknown[]): Promise<pg.QueryResult<T>> {
    return this.admin.query<T>(sql, params);
  }

  /**
   * CPU seconds used so far by the server's processes, with what their exited children used:
   * on the private server, its postmaster and its children only; on the shared one, every
   * postgres process on this machine. Null when none is visible.
   */
  serverCpuSeconds(): number | null {
    const postmaster = this.server ? readFileSync(join(this.server.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]!.trim() : null;
    let seconds = 0;
    let seen = false;
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      try {
        if (postmaster !== null) {
          if (pid !== postmaster && String(ppidOf(pid)) !== postmaster) continue;
        } else if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'postgres') continue;
        seconds += procCpuSeconds(pid, true);
        seen = true;
      } catch {
        // The process ended meanwhile.
      }
    }
    return seen ? seconds : null;
  }

  /**
   * A checkpoint on the private server (the shared one is left alone), so that the WAL files
   * the warm-up filled are recycled as the next ones. A new server has none to reuse: each
   * 16 MB file is created, zero-filled and synced when a commit first needs it, and at 500
   * publishes a second that stalled every commit for 15-19 ms (once about 250 ms) every 7 s,
   * which a server that has been running for a while does not do.
   */
  async recycleWal(): Promise<void> {
    if (this.private) await this.query('CHECKPOINT');
  }

  /** Forgets the statements counted so far (private server only). */
  async resetStatements(): Promise<void> {
    if (this.private) await this.query('SELECT pg_stat_statements_reset()');
  }

  /** Waits until no session of Herald's is left, so that their table counters have been flushed (a backend flushes them as it exits). */
  async heraldGone(patienceMs = 5000): Promise<void> {
    if (!this.private) {
      // The shared server's sessions are not Herald's alone: give the backends time to go.
      await new Promise((res) => setTimeout(res, 1500));
      return;
    }
    const end = Date.now() + patienceMs;
    while (Date.now() < end) {
      const r = await this.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE usename = $1', [HERALD_ROLE]);
      if (r.rows[0].n === 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
  }

  async snapshot(schema: string): Promise<Snapshot> {
    await this.query('SELECT pg_stat_clear_snapshot()');
    const lsn = (await this.query('SELECT pg_current_wal_lsn()::text AS l')).rows[0].l as string;
    const fpi = (await this.query('SELECT wal_fpi::bigint AS f FROM pg_stat_wal')).rows[0]?.f;
    const t = await this.query(
      `SELECT relname, n_tup_ins::bigint AS ins, n_tup_upd::bigint AS upd, n_tup_hot_upd::bigint AS hot, n_tup_del::bigint AS del
       FROM pg_stat_user_tables WHERE schemaname = $1`, [schema]);
    const i = await this.query(
      `SELECT indexrelname AS name, pg_relation_size(indexrelid)::bigint AS bytes, idx_scan::bigint AS scans FROM pg_stat_user_indexes WHERE schemaname = $1`, [schema]);
    return {
      lsn, fpi: fpi === undefined ? null : Number(fpi),
      tables: new Map(t.rows.map((r) => [r.relname, { ins: Number(r.ins), upd: Number(r.upd), hot: Number(r.hot), del: Number(r.del) }])),
      indexes: new Map(i.rows.map((r) => [r.name, { bytes: Number(r.bytes), scans: Number(r.scans) }])),
    };
  }

  /** What the server did between `s0` and now, per delivery. Call after heraldGone(), so that every counter has been flushed. */
  async cost(schema: string, s0: Snapshot, deliveries: number): Promise<PgCost> {
    const s1 = await this.snapshot(schema);
    const per = (x: number) => x / deliveries;
    const wal = Number((await this.query('SELECT pg_wal_lsn_diff($1, $2)::bigint AS b', [s1.lsn, s0.lsn])).rows[0].b);
    const byTable: PgCost['byTable'] = {};
    let heap = 0;
    let upd = 0;
    let hot = 0;
    const nonHotByTable = new Map<string, number>();
    for (const [name, b] of s1.tables) {
      const a = s0.tables.get(name) ?? { ins: 0, upd: 0, hot: 0, del: 0 };
      const d = { ins: b.ins - a.ins, upd: b.upd - a.upd, hotUpd: b.hot - a.hot, del: b.del - a.del };
      if (d.ins + d.upd + d.del === 0) continue;
      byTable[name] = { ins: per(d.ins), upd: per(d.upd), hotUpd: per(d.hotUpd), del: per(d.del), hotShare: d.upd ? d.hotUpd / d.upd : null };
      heap += d.ins + d.upd;
      upd += d.upd;
      hot += d.hotUpd;
      nonHotByTable.set(name, d.ins + d.upd - d.hotUpd);
    }
    // Index entries: each insert and non-HOT update adds one to every index of its table. A
    // partial index only gets those whose new row meets its predicate, which the counters do
    // not tell: those are left out of the count, and their growth is shown.
    const idx = await this.query(
      `SELECT c.relname AS tbl, i.relname AS name, x.indpred IS NOT NULL AS partial
       FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = $1`, [schema]);
    let entries = 0;
    const byIndex: PgCost['byIndex'] = {};
    for (const r of idx.rows) {
      const writes = nonHotByTable.get(r.tbl) ?? 0;
      if (!r.partial) entries += writes;
      const a = s0.indexes.get(r.name) ?? { bytes: 0, scans: 0 };
      const b = s1.indexes.get(r.name) ?? a;
      if (writes === 0 && b.scans === a.scans) continue;
      byIndex[r.name] = { table: r.tbl, partial: r.partial, entriesPerDelivery: r.partial ? null : per(writes), bytesPerDelivery: per(b.bytes - a.bytes), scansPerDelivery: per(b.scans - a.scans) };
    }
    let statementsPerDelivery: number | null = null;
    let top: PgCost['top'] = { byCalls: [], byTime: [] };
    if (this.private) {
      const st = await this.query(
        `SELECT query, calls::bigint AS calls, total_exec_time AS total, rows::bigint AS rows, wal_bytes::bigint AS wal, (shared_blks_hit + shared_blks_read)::bigint AS blks
         FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = $1`, [HERALD_ROLE]);
      const all: Statement[] = st.rows.map((r) => ({
        query: String(r.query).replace(/\s+/g, ' ').trim(), calls: Number(r.calls), totalMs: Number(r.total), meanMs: Number(r.total) / Number(r.calls),
        rows: Number(r.rows), walBytes: Number(r.wal), sharedBlks: Number(r.blks),
      }));
      statementsPerDelivery = per(all.reduce((n, s) => n + s.calls, 0));
      top = { byCalls: [...all].sort((a, b) => b.calls - a.calls).slice(0, 8), byTime: [...all].sort((a, b) => b.totalMs - a.totalMs).slice(0, 8) };
    }
    return {
      deliveries, statementsPerDelivery, walBytesPerDelivery: per(wal), walFpiPerDelivery: s0.fpi === null || s1.fpi === null ? null : per(s1.fpi - s0.fpi),
      byTable, heapWritesPerDelivery: per(heap), hotShare: upd ? hot / upd : null, indexEntriesPerDelivery: per(entries), byIndex, top,
    };
  }

  /** Stops the private server at once (the bench was interrupted). */
  destroyNow(): void {
    this.server?.destroy();
  }

  async close(): Promise<void> {
    await this.admin.end().catch(() => undefined);
    this.server?.destroy();
  }
}
