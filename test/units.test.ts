// Unit tests of the small pure parts: retry timing, event-type filters, configuration,
// secrets at rest and ids.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultRetrySchedule, nextRetryDelayMs, parseRetryAfter, parseRetrySchedule, type RetryPolicy } from '../src/domain/retry.ts';
import { DEFAULT_CATALOG, filterMatches, subscriptionMatches, unknownFilters, type EventType } from '../src/domain/eventTypes.ts';
import { loadConfig, type Env } from '../src/config.ts';
import { SecretBox, parseSecretKey, safeEqual } from '../src/secrets.ts';
import { UUID_RE, isUuid, uuidv7 } from '../src/domain/ids.ts';
import { TokenIssuer } from '../src/dialects/paycor/token.ts';
import { openStore, storeOptions } from '../src/store/open.ts';

describe('domain/retry', () => {
  test('defaultRetrySchedule: 16 delays, 5 s doubling, capped at 36000 s', () => {
    const s = defaultRetrySchedule();
    assert.equal(s.length, 16);
    assert.equal(s[0], 5);
    for (let i = 1; i < s.length; i++) assert.equal(s[i], Math.min(s[i - 1]! * 2, 36_000), `entry ${i}`);
    assert.deepEqual(s, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5120, 10240, 20480, 36000, 36000, 36000]);
    assert.equal(Math.max(...s), 36_000);
  });

  test('defaultRetrySchedule answers a fresh array each time', () => {
    const a = defaultRetrySchedule();
    a[0] = 999;
    assert.equal(defaultRetrySchedule()[0], 5);
  });

  const policy: RetryPolicy = { scheduleSeconds: [10, 20, 40], jitter: 0.2, maxRetryAfterSeconds: 100 };

  test('nextRetryDelayMs: jitter 0.2 spans exactly ±20% (random 0 → -20%, 1 → +20%, 0.5 → on time)', () => {
    assert.equal(nextRetryDelayMs(policy, 1, null, () => 0), 8_000);
    assert.equal(nextRetryDelayMs(policy, 1, null, () => 1), 12_000);
    assert.equal(nextRetryDelayMs(policy, 1, null, () => 0.5), 10_000);
    assert.equal(nextRetryDelayMs(policy, 2, null, () => 0), 16_000);
    assert.equal(nextRetryDelayMs(policy, 3, null, () => 1), 48_000);
  });

  test('nextRetryDelayMs with Math.random stays within ±20% of the scheduled delay', () => {
    for (let attempt = 1; attempt <= 3; attempt++) {
      const base = policy.scheduleSeconds[attempt - 1]! * 1000;
      for (let i = 0; i < 500; i++) {
        const d = nextRetryDelayMs(policy, attempt, null)!;
        assert.ok(d >= base * 0.8 && d <= base * 1.2, `attempt ${attempt}: ${d} outside [${base * 0.8}, ${base * 1.2}]`);
      }
    }
  });

  test('nextRetryDelayMs with jitter 0 is exactly the schedule', () => {
    const p = { ...policy, jitter: 0 };
    assert.deepEqual([1, 2, 3].map((n) => nextRetryDelayMs(p, n, null, () => 0.99)), [10_000, 20_000, 40_000]);
  });

  test('nextRetryDelayMs answers null past the schedule, even with a Retry-After', () => {
    assert.equal(nextRetryDelayMs(policy, 4, null, () => 0.5), null);
    assert.equal(nextRetryDelayMs(policy, 17, null), null);
    assert.equal(nextRetryDelayMs(policy, 4, 5), null);
    assert.equal(nextRetryDelayMs({ ...policy, scheduleSeconds: [] }, 1, null), null);
  });

  test('nextRetryDelayMs honours Retry-After, clamped to 0..maxRetryAfterSeconds, without jitter', () => {
    assert.equal(nextRetryDelayMs(policy, 1, 30, () => 0), 30_000);
    assert.equal(nextRetryDelayMs(policy, 1, 2.5, () => 1), 2_500);
    assert.equal(nextRetryDelayMs(policy, 2, 100, () => 0), 100_000);
    assert.equal(nextRetryDelayMs(policy, 2, 101, () => 0), 100_000);
    assert.equal(nextRetryDelayMs(policy, 3, 86_400 * 365, () => 0), 100_000);
    assert.equal(nextRetryDelayMs(policy, 1, 0, () => 0), 0);
    assert.equal(nextRetryDelayMs(policy, 1, -30, () => 0), 0);
  });

  test('parseRetryAfter: delta-seconds', () => {
    assert.equal(parseRetryAfter('120', 0), 120);
    assert.equal(parseRetryAfter(' 7 ', 0), 7);
    assert.equal(parseRetryAfter('0', 0), 0);
    assert.equal(parseRetryAfter(['30', '60'], 0), 30);
  });

  test('parseRetryAfter: an HTTP date, relative to now, never negative', () => {
    const date = 'Wed, 21 Oct 2015 07:28:00 GMT';
    const at = Date.UTC(2015, 9, 21, 7, 28, 0);
    assert.equal(parseRetryAfter(date, at - 90_000), 90);
    assert.equal(parseRetryAfter(date, at - 1_500), 1.5);
    assert.equal(parseRetryAfter(date, at + 60_000), 0);
  });

  test('parseRetryAfter: absent or garbage is null', () => {
    assert.equal(parseRetryAfter(undefined, 0), null);
    assert.equal(parseRetryAfter('', 0), null);
    assert.equal(parseRetryAfter('   ', 0), null);
    assert.equal(parseRetryAfter([], 0), null);
    assert.equal(parseRetryAfter('soon', 0), null);
    assert.equal(parseRetryAfter('120s', 0), null);
    assert.equal(parseRetryAfter('in a minute', 0), null);
  });

  test('parseRetryAfter: a number that is not delta-seconds (-5, 1.5) is garbage, not a date in 2001', () => {
    // Date.parse's legacy parser reads "-5" and "1.5" as dates in 2001; RFC 9110 allows only 1*DIGIT or an HTTP-date.
    const now = Date.UTC(2025, 0, 1);
    assert.equal(parseRetryAfter('-5', now), null);
    assert.equal(parseRetryAfter('1.5', now), null);
  });

  test("parseRetrySchedule('0.3,0.6,1.2') and friends", () => {
    assert.deepEqual(parseRetrySchedule('0.3,0.6,1.2'), [0.3, 0.6, 1.2]);
    assert.deepEqual(parseRetrySchedule(' 1 , 2 ,3, '), [1, 2, 3]);
    assert.deepEqual(parseRetrySchedule('0'), [0]);
  });

  test('parseRetrySchedule refuses garbage, naming HERALD_RETRY_SCHEDULE', () => {
    assert.throws(() => parseRetrySchedule('x'), /HERALD_RETRY_SCHEDULE.*"x"/);
    assert.throws(() => parseRetrySchedule(''), /HERALD_RETRY_SCHEDULE/);
    assert.throws(() => parseRetrySchedule(' , ,'), /HERALD_RETRY_SCHEDULE/);
    assert.throws(() => parseRetrySchedule('1,-2'), /HERALD_RETRY_SCHEDULE.*"-2"/);
    assert.throws(() => parseRetrySchedule('1,Infinity'), /HERALD_RETRY_SCHEDULE/);
    assert.throws(() => parseRetrySchedule('1,NaN'), /HERALD_RETRY_SCHEDULE/);
  });
});

describe('domain/eventTypes', () => {
  test('filterMatches: exact, either side wildcard, both wildcards', () => {
    assert.equal(filterMatches('Employee.Add', 'Employee', 'Add'), true);
    assert.equal(filterMatches('Employee.*', 'Employee', 'Update'), true);
    assert.equal(filterMatches('*.created', 'Contractor', 'created'), true);
    assert.equal(filterMatches('*.*', 'Payroll', 'paid'), true);
  });

  test('filterMatches: non-matches', () => {
    assert.equal(filterMatches('Employee.Add', 'Employee', 'Update'), false);
    assert.equal(filterMatches('Employee.*', 'Contractor', 'created'), false);
    assert.equal(filterMatches('*.created', 'Contractor', 'deleted'), false);
    assert.equal(filterMatches('employee.add', 'Employee', 'Add'), false, 'case-sensitive');
    assert.equal(filterMatches('Employee', 'Employee', 'Add'), false, 'no dot');
    assert.equal(filterMatches('*', 'Employee', 'Add'), false, 'a bare * is not a filter');
    assert.equal(filterMatches('Employee.Add.x', 'Employee', 'Add'), false);
    assert.equal(filterMatches('Emp*.Add', 'Employee', 'Add'), false, 'no partial wildcards');
    assert.equal(filterMatches('', 'Employee', 'Add'), false);
  });

  test('subscriptionMatches: empty filters match every event; otherwise any filter may match', () => {
    assert.equal(subscriptionMatches([], 'Anything', 'at_all'), true);
    assert.equal(subscriptionMatches(['Payroll.*', 'Employee.Add'], 'Employee', 'Add'), true);
    assert.equal(subscriptionMatches(['Payroll.*', '*.Add'], 'Employee', 'Add'), true);
    assert.equal(subscriptionMatches(['Payroll.*', 'Employee.Update'], 'Employee', 'Add'), false);
    assert.equal(subscriptionMatches(['nonsense'], 'Employee', 'Add'), false);
  });

  test('unknownFilters names exactly the filters that match nothing in the catalog', () => {
    const filters = ['*.*', 'Employee.*', '*.created', 'Employee.Add', 'Nope.*', '*.Nope', 'Employee.Exploded', 'Payroll.paid'];
    assert.deepEqual(unknownFilters(filters, DEFAULT_CATALOG), ['Nope.*', '*.Nope', 'Employee.Exploded']);
    assert.deepEqual(unknownFilters([], DEFAULT_CATALOG), []);
    assert.deepEqual(unknownFilters(['*.*', 'A.b'], []), ['*.*', 'A.b']);
    const tiny: EventType[] = [{ entity: 'Widget', event: 'made', description: '' }];
    assert.deepEqual(unknownFilters(['Widget.*', '*.made', 'Widget.broken', '*.*'], tiny), ['Widget.broken']);
  });
});

describe('config: loadConfig', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'herald-units-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test('defaults, given only a temp HERALD_DATA_DIR', () => {
    const dir = tempDir();
    const c = loadConfig({ HERALD_DATA_DIR: dir });
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 8080);
    assert.equal(c.dataDir, dir);
    assert.equal(c.databaseUrl, null);
    assert.equal(c.databaseSchema, 'public');
    assert.deepEqual(c.retrySchedule, defaultRetrySchedule());
    assert.equal(c.retryJitter, 0.2);
    assert.equal(c.maxRetryAfterSeconds, 36_000);
    assert.deepEqual(c.allowPrivateNetworks, []);
    assert.equal(c.requestTimeoutMs, 15_000);
    assert.equal(c.leaseMs, 60_000);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.secretKey.length, 32);
    assert.equal(c.senderThread, true);
  });

  test('HERALD_SENDER_THREAD takes on and off', () => {
    assert.equal(loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_SENDER_THREAD: 'off' }).senderThread, false);
    assert.equal(loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_SENDER_THREAD: 'on' }).senderThread, true);
    assert.equal(loadConfig({ HERALD_DATA_DIR: tempDir() }).databasePrepared, true);
    assert.equal(loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_DATABASE_PREPARED: 'off' }).databasePrepared, false);
  });

  test('HERALD_SQLITE_CHECKPOINT_PAGES: 1000 by default, 100 to 1,000,000, and the SQLite store checkpoints at it', async () => {
    assert.equal(loadConfig({ HERALD_DATA_DIR: tempDir() }).sqliteCheckpointPages, 1000);
    for (const bad of ['99', '1000001', '1e3.5', 'many']) {
      assert.throws(() => loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_SQLITE_CHECKPOINT_PAGES: bad }), /HERALD_SQLITE_CHECKPOINT_PAGES: .* must be an integer from 100 to 1000000/, bad);
    }
    const c = loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_SQLITE_CHECKPOINT_PAGES: '2500' });
    assert.equal(c.sqliteCheckpointPages, 2500);
    const store = await openStore(storeOptions(c));
    try {
      assert.equal((await store.db.all<{ wal_autocheckpoint: number }>('PRAGMA wal_autocheckpoint'))[0]?.wal_autocheckpoint, 2500);
    } finally {
      await store.close();
    }
  });

  test('HERALD_CLAIM_COALESCE_MS: 5 by default, 0 to 1000, and a clear error otherwise', () => {
    assert.equal(loadConfig({ HERALD_DATA_DIR: tempDir() }).claimCoalesceMs, 5);
    assert.equal(loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_CLAIM_COALESCE_MS: '0' }).claimCoalesceMs, 0);
    for (const bad of ['-1', '1001', '2.5', 'soon']) {
      assert.throws(() => loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_CLAIM_COALESCE_MS: bad }), /HERALD_CLAIM_COALESCE_MS: .* must be an integer from 0 to 1000/, bad);
    }
  });

  test('the generated admin token and secret key are written with mode 0600 and reused on the next load', () => {
    const dir = tempDir();
    const first = loadConfig({ HERALD_DATA_DIR: dir });
    assert.equal(first.adminTokenGenerated, true);
    assert.ok(first.adminToken.length >= 32);
    for (const f of ['admin-token', 'secret-key']) {
      assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} mode`);
    }
    assert.equal(readFileSync(join(dir, 'admin-token'), 'utf8').trim(), first.adminToken);
    assert.equal(readFileSync(join(dir, 'secret-key'), 'utf8').trim(), first.secretKey.toString('hex'));

    const second = loadConfig({ HERALD_DATA_DIR: dir });
    assert.equal(second.adminTokenGenerated, false);
    assert.equal(second.adminToken, first.adminToken);
    assert.ok(second.secretKey.equals(first.secretKey));

    const other = loadConfig({ HERALD_DATA_DIR: tempDir() });
    assert.notEqual(other.adminToken, first.adminToken, 'a new data dir generates a new token');
    assert.ok(!other.secretKey.equals(first.secretKey));
  });

  test('a given HERALD_ADMIN_TOKEN is used as is and is not generated', () => {
    const dir = tempDir();
    const c = loadConfig({ HERALD_DATA_DIR: dir, HERALD_ADMIN_TOKEN: '  my-token  ' });
    assert.equal(c.adminToken, 'my-token');
    assert.equal(c.adminTokenGenerated, false);
  });

  const malformed: [string, Env, RegExp][] = [
    ['HERALD_PORT not a number', { HERALD_PORT: 'http' }, /HERALD_PORT/],
    ['HERALD_PORT out of range', { HERALD_PORT: '70000' }, /HERALD_PORT/],
    ['HERALD_PORT a fraction', { HERALD_PORT: '80.5' }, /HERALD_PORT/],
    ['HERALD_PORT negative', { HERALD_PORT: '-1' }, /HERALD_PORT/],
    ['HERALD_RETRY_SCHEDULE garbage', { HERALD_RETRY_SCHEDULE: '5,ten,20' }, /HERALD_RETRY_SCHEDULE/],
    ['HERALD_RETRY_SCHEDULE negative', { HERALD_RETRY_SCHEDULE: '-1' }, /HERALD_RETRY_SCHEDULE/],
    ['HERALD_SECRET_KEY too short', { HERALD_SECRET_KEY: 'abcd' }, /HERALD_SECRET_KEY/],
    ['HERALD_SECRET_KEY 63 hex chars', { HERALD_SECRET_KEY: 'a'.repeat(63) }, /HERALD_SECRET_KEY/],
    ['HERALD_LEASE_SECONDS not a number', { HERALD_LEASE_SECONDS: 'long' }, /HERALD_LEASE_SECONDS/],
    ['HERALD_LEASE_SECONDS shorter than the request timeout', { HERALD_LEASE_SECONDS: '10', HERALD_REQUEST_TIMEOUT_MS: '15000' }, /HERALD_LEASE_SECONDS/],
    ['HERALD_LEASE_SECONDS equal to the default request timeout', { HERALD_LEASE_SECONDS: '15' }, /HERALD_LEASE_SECONDS/],
    ['DATABASE_URL not PostgreSQL', { DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
    ['HERALD_DATABASE_SCHEMA not an identifier', { HERALD_DATABASE_SCHEMA: 'Robert"; DROP' }, /HERALD_DATABASE_SCHEMA/],
    ['HERALD_RETRY_JITTER above 1', { HERALD_RETRY_JITTER: '1.5' }, /HERALD_RETRY_JITTER/],
    ['HERALD_REQUEST_TIMEOUT_MS zero', { HERALD_REQUEST_TIMEOUT_MS: '0' }, /HERALD_REQUEST_TIMEOUT_MS/],
    ['HERALD_ALLOW_PRIVATE_NETWORKS garbage', { HERALD_ALLOW_PRIVATE_NETWORKS: 'the office' }, /HERALD_ALLOW_PRIVATE_NETWORKS/],
    ['HERALD_SENDER_THREAD neither on nor off', { HERALD_SENDER_THREAD: 'sometimes' }, /HERALD_SENDER_THREAD/],
  ];
  for (const [name, env, re] of malformed) {
    test(`${name} throws an Error naming the setting`, () => {
      assert.throws(() => loadConfig({ HERALD_DATA_DIR: tempDir(), ...env }), (err: unknown) => err instanceof Error && re.test(err.message));
    });
  }

  test('a lease more than twice the request timeout is accepted; one not is refused', () => {
    const c = loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_LEASE_SECONDS: '4.5', HERALD_REQUEST_TIMEOUT_MS: '2000' });
    assert.equal(c.leaseMs, 4500);
    assert.equal(c.requestTimeoutMs, 2000);
    assert.throws(() => loadConfig({ HERALD_DATA_DIR: tempDir(), HERALD_LEASE_SECONDS: '3.5', HERALD_REQUEST_TIMEOUT_MS: '2000' }), /HERALD_LEASE_SECONDS.*twice/);
  });

  test('a 64-hex or base64 HERALD_SECRET_KEY is used and no key file is written', () => {
    const dir = tempDir();
    const hex = 'ab'.repeat(32);
    const c = loadConfig({ HERALD_DATA_DIR: dir, HERALD_ADMIN_TOKEN: 't', HERALD_SECRET_KEY: hex });
    assert.equal(c.secretKey.toString('hex'), hex);
    assert.throws(() => statSync(join(dir, 'secret-key')));
    const b64 = Buffer.alloc(32, 7).toString('base64');
    assert.ok(loadConfig({ HERALD_DATA_DIR: dir, HERALD_ADMIN_TOKEN: 't', HERALD_SECRET_KEY: b64 }).secretKey.equals(Buffer.alloc(32, 7)));
  });

  test('HERALD_CONFIG supplies values and the environment wins over it', () => {
    const dir = tempDir();
    const file = join(dir, 'herald.json');
    writeFileSync(file, JSON.stringify({ HERALD_PORT: 9090, HERALD_HOST: '0.0.0.0', HERALD_RETRY_SCHEDULE: '1,2', HERALD_DATA_DIR: join(dir, 'data'), HERALD_LOG_LEVEL: 'warn' }));
    const fromFile = loadConfig({ HERALD_CONFIG: file });
    assert.equal(fromFile.port, 9090);
    assert.equal(fromFile.host, '0.0.0.0');
    assert.deepEqual(fromFile.retrySchedule, [1, 2]);
    assert.equal(fromFile.dataDir, join(dir, 'data'));
    assert.equal(fromFile.logLevel, 'warn');

    const envWins = loadConfig({ HERALD_CONFIG: file, HERALD_PORT: '7070', HERALD_LOG_LEVEL: 'debug' });
    assert.equal(envWins.port, 7070);
    assert.equal(envWins.logLevel, 'debug');
    assert.equal(envWins.host, '0.0.0.0', 'values the environment does not give still come from the file');
  });

  test('HERALD_CONFIG with an unknown setting throws naming HERALD_CONFIG and the setting', () => {
    const file = join(tempDir(), 'herald.json');
    writeFileSync(file, JSON.stringify({ HERALD_PROT: 9090 }));
    assert.throws(() => loadConfig({ HERALD_CONFIG: file, HERALD_DATA_DIR: tempDir() }), /HERALD_CONFIG.*HERALD_PROT/);
  });

  test('a malformed value in the HERALD_CONFIG file throws naming the setting', () => {
    const file = join(tempDir(), 'herald.json');
    writeFileSync(file, JSON.stringify({ HERALD_PORT: 'eighty' }));
    assert.throws(() => loadConfig({ HERALD_CONFIG: file, HERALD_DATA_DIR: tempDir() }), /HERALD_PORT/);
  });

  test('an unreadable or malformed HERALD_CONFIG file throws an Error naming HERALD_CONFIG', () => {
    const dir = tempDir();
    const cases: [string, string | null][] = [['not-json.json', '{"HERALD_PORT": '], ['null.json', 'null'], ['array.json', '[1,2]'], ['missing.json', null]];
    for (const [name, text] of cases) {
      const file = join(dir, name);
      if (text !== null) writeFileSync(file, text);
      assert.throws(() => loadConfig({ HERALD_CONFIG: file, HERALD_DATA_DIR: tempDir() }), (err: unknown) => err instanceof Error && /HERALD_CONFIG/.test(err.message), name);
    }
  });
});

describe('secrets', () => {
  const key = Buffer.alloc(32, 0x42);
  let box: SecretBox;
  before(() => {
    box = new SecretBox(key);
  });

  test('seal then open round-trips, including unicode and the empty string', () => {
    for (const plain of ['whsec_abc123', '', 'naïve ✓ 秘密', 'x'.repeat(10_000)]) assert.equal(box.open(box.seal(plain)), plain);
  });

  test('the sealed form does not contain the plain text', () => {
    const sealed = box.seal('whsec_super-secret-value');
    assert.ok(sealed.startsWith('v1.'));
    assert.ok(!sealed.includes('super-secret'));
    assert.ok(!Buffer.from(sealed.slice(3), 'base64').toString('latin1').includes('super-secret'));
  });

  test('two seals of one text differ (fresh IV), and both open', () => {
    const a = box.seal('same');
    const b = box.seal('same');
    assert.notEqual(a, b);
    assert.equal(box.open(a), 'same');
    assert.equal(box.open(b), 'same');
  });

  test('tampered ciphertext, tag or IV throws', () => {
    const sealed = box.seal('whsec_value');
    const raw = Buffer.from(sealed.slice(3), 'base64');
    for (const at of [0, 12, raw.length - 1]) { // IV, tag, body
      const t = Buffer.from(raw);
      t[at] = t[at]! ^ 0x01;
      assert.throws(() => box.open(`v1.${t.toString('base64')}`), Error, `byte ${at}`);
    }
    assert.throws(() => box.open(`v1.${raw.subarray(0, raw.length - 1).toString('base64')}`), Error, 'truncated');
  });

  test('another key cannot open it; unknown formats throw', () => {
    const sealed = box.seal('whsec_value');
    assert.throws(() => new SecretBox(Buffer.alloc(32, 0x43)).open(sealed));
    assert.throws(() => box.open('v2.' + sealed.slice(3)), /unknown secret format/);
    assert.throws(() => box.open('whsec_value'), /unknown secret format/);
  });

  test('SecretBox needs a 32-byte key', () => {
    assert.throws(() => new SecretBox(Buffer.alloc(16)), /32 bytes/);
    assert.throws(() => new SecretBox(Buffer.alloc(33)), /32 bytes/);
  });

  test('parseSecretKey accepts 64 hex or base64 of 32 bytes, and nothing else', () => {
    assert.ok(parseSecretKey('0f'.repeat(32)).equals(Buffer.alloc(32, 0x0f)));
    assert.ok(parseSecretKey(Buffer.alloc(32, 9).toString('base64')).equals(Buffer.alloc(32, 9)));
    assert.throws(() => parseSecretKey('0f'.repeat(31)), /HERALD_SECRET_KEY/);
    assert.throws(() => parseSecretKey(Buffer.alloc(16).toString('base64')), /HERALD_SECRET_KEY/);
    assert.throws(() => parseSecretKey(''), /HERALD_SECRET_KEY/);
  });

  test('safeEqual', () => {
    assert.equal(safeEqual('abc', 'abc'), true);
    assert.equal(safeEqual('', ''), true);
    assert.equal(safeEqual('秘密', '秘密'), true);
    assert.equal(safeEqual('abc', 'abd'), false);
    assert.equal(safeEqual('abc', 'abcd'), false);
    assert.equal(safeEqual('abcd', 'abc'), false);
    assert.equal(safeEqual('abc', ''), false);
    assert.equal(safeEqual('abc', 'ABC'), false);
  });
});

describe('Paycor-style access tokens', () => {
  test('a token lives at least its expires_in, wherever in a second it was issued, and no longer than a second more', () => {
    const issuer = new TokenIssuer(Buffer.alloc(32, 7), 1);
    for (const at of [12_000, 12_001, 12_999]) {
      const { token, expiresIn } = issuer.issue('tenant-1', at);
      assert.equal(expiresIn, 1);
      assert.deepEqual(issuer.verify(token, at + 999), { tenantId: 'tenant-1' }, `issued at ${at}, used 999 ms later`);
      assert.deepEqual(issuer.verify(token, at + 2000), { error: 'holds an access token that has expired' }, `issued at ${at}, used 2 s later`);
    }
    const other = new TokenIssuer(Buffer.alloc(32, 8), 1);
    assert.deepEqual(other.verify(issuer.issue('tenant-1', 0).token, 0), { error: 'holds no valid access token' }, 'another key');
  });
});

describe('domain/ids: uuidv7', () => {
  test('1000 ids are unique, sort in creation order, and are version-7 UUIDs', () => {
    const ids = Array.from({ length: 1000 }, () => uuidv7());
    assert.equal(new Set(ids).size, 1000);
    assert.deepEqual([...ids].sort(), ids);
    for (const id of ids) {
      assert.match(id, UUID_RE);
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, id);
      assert.ok(isUuid(id));
    }
  });

  test('the first 48 bits are the creation time in milliseconds', () => {
    const before = Date.now();
    const id = uuidv7();
    const after = Date.now();
    const ms = parseInt(id.replace(/-/g, '').slice(0, 12), 16);
    assert.ok(ms >= before && ms <= after + 1, `${ms} not in [${before}, ${after}]`);
  });

  test('ids made within one millisecond (past the 12-bit counter) still sort in creation order', () => {
    const now = Date.now() + 60_000;
    const ids = Array.from({ length: 5000 }, () => uuidv7(now));
    assert.equal(new Set(ids).size, 5000);
    assert.deepEqual([...ids].sort(), ids);
    // And a later call with a clock that went backwards still sorts after them.
    const later = uuidv7(now - 10_000);
    assert.ok(later > ids.at(-1)!);
  });

  test('isUuid', () => {
    assert.equal(isUuid('0190a0a0-0000-7000-8000-000000000000'), true);
    assert.equal(isUuid('0190a0a0-0000-7000-8000-00000000000'), false);
    assert.equal(isUuid('nope'), false);
    assert.equal(isUuid(42), false);
    assert.equal(isUuid(null), false);
  });
});
