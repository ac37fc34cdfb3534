// The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a
// real Herald on SQLite and real receivers on loopback: the operator logs in, finds a
// delivery the test published, opens its attempts, retries it and watches the new attempt
// arrive live; pauses and resumes a subscription; then a tenant's portal link shows that
// tenant only, rotates its secret and sends a test event signed with the new one.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Webhook } from 'standardwebhooks';
import { ADMIN, startHerald, type TestHerald } from './helpers/herald.ts';
import { eventually, Receiver } from './helpers/receiver.ts';

const CHROMIUM = process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium';
const CI = process.env.CI === 'true';
const skip = !existsSync(CHROMIUM) && !CI ? `no Chromium at ${CHROMIUM} (apt-get install chromium); the browser test is skipped, CI runs it` : false;
if (skip) console.log(`NOTE: ${skip}`);

// Hostile data everywhere the page shows something: none of it may become markup.
const HOSTILE_BODY = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> upstream exploded';
const HOSTILE_NAME = 'Acme <b onmouseover="window.__pwned=3">Payroll</b>';
const HOSTILE_DESCRIPTION = '<img src=x onerror="window.__pwned=4">';
const HOSTILE_QUERY = '?q="><img src=x onerror=window.__pwned=5>';

describe('dashboard files', () => {
  let h: TestHerald;
  before(async () => { h = await startHerald('sqlite'); });
  after(async () => { await h?.stop(); });

  test('served under a strict policy, /dashboard redirects, unknown files are 404', async () => {
    const r = await fetch(`${h.url}/dashboard`, { redirect: 'manual' });
    assert.equal(r.status, 301);
    assert.equal(r.headers.get('location'), '/dashboard/');

    const page = await fetch(`${h.url}/dashboard/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html; charset=utf-8/);
    const csp = page.headers.get('content-security-policy')!;
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    const html = await page.text();
    assert.match(html, /<script type="module" src="app.js"><\/script>/);
    assert.doesNotMatch(html, /<script>(?!<)/, 'no inline script');

    // Every module the page names is served as JavaScript.
    for (const name of ['app.js', 'api.js', 'deliveries.js', 'stream.js']) {
      const js = await fetch(`${h.url}/dashboard/${name}`);
      assert.equal(js.status, 200, name);
      assert.match(js.headers.get('content-type')!, /^text\/javascript/, name);
    }
    const css = await fetch(`${h.url}/dashboard/app.css`);
    assert.match(css.headers.get('content-type')!, /^text\/css/);
    const etag = css.headers.get('etag')!;
    assert.equal((await fetch(`${h.url}/dashboard/app.css`, { headers: { 'if-none-match': etag } })).status, 304);

    for (const path of ['/dashboard/nope.js', '/dashboard/..%2Fhttp%2Fapp.ts', '/dashboard/%2e%2e%2fconfig.ts', '/dashboard/toString', '/dashboard/__proto__']) {
      const miss = await fetch(h.url + path);
      assert.equal(miss.status, 404, path);
      assert.doesNotMatch(await miss.text(), /import|export/, path);
    }
  });
});

describe('dashboard in Chromium', { skip }, () => {
  let h: TestHerald;
  let browser: Browser;
  const receivers: Receiver[] = [];
  const shots = mkdtempSync(join(tmpdir(), 'herald-dashboard-shots-'));

  before(async () => {
    // One retry, far off: the first failure stays pending until the test retries it.
    h = await startHerald('sqlite', { HERALD_RETRY_SCHEDULE: '600', HERALD_RETRY_JITTER: '0' });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });
  after(async () => {
    // The browser first: its open streams would otherwise hold Herald's close.
    await browser?.close();
    await Promise.all(receivers.map((r) => r.stop()));
    await h?.stop();
  });

  /** A page that fails the test on any script error or policy violation. */
  async function openPage(): Promise<{ page: Page; errors: string[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error' && !/status of 40[49]/.test(m.text())) errors.push(`console: ${m.text()}`); });
    return { page, errors };
  }

  test('the stream parser takes messages cut anywhere, skips keep-alives and other events', async () => {
    const { page, errors } = await openPage();
    await page.goto(`${h.url}/dashboard/`);
    const got = await page.evaluate(async () => {
      const { SseParser } = await import('/dashboard/stream.js' as string);
      const out: [string, string][] = [];
      const p = new SseParser((e: string, d: string) => out.push([e, d]));
      const text = ': keep-alive\n\nevent: attempt\ndata: {"id":1,\ndata: "x":"a\u00e9"}\n\nevent: other\ndata: 2\n\r\nevent:attempt\r\ndata:{"id":3}\r\n\r\n: ping\n\nevent: attempt\ndata: {"id":4}\n\nevent: attempt\ndata: {"unfinished"';
      for (let i = 0; i < text.length; i += 3) p.push(text.slice(i, i + 3));
      return out;
    });
    assert.deepEqual(got, [['attempt', '{"id":1,\n"x":"a\u00e9"}'], ['other', '2'], ['attempt', '{"id":3}'], ['attempt', '{"id":4}']]);
    assert.deepEqual(errors, []);
    await page.context().close();
  });

  test('the stream reconnects after a failure, with backoff, and stops for good on a 401', async () => {
    const { page, errors } = await openPage();
    await page.goto(`${h.url}/dashboard/`);
    const got = await page.evaluate(async (admin) => {
      const { openStream } = await import('/dashboard/stream.js' as string);
      // A path that answers 404: each try fails, and the next comes after the backoff.
      const states: string[] = [];
      const tries: number[] = [];
      const s = openStream('/dashboard/no-such-stream', admin, { onAttempt() {}, onState: (x: string) => { states.push(x); if (x !== 'closed') tries.push(performance.now()); } });
      await new Promise((ok) => setTimeout(ok, 1400));
      s.close();
      let unauthorized = false;
      const end: string[] = [];
      await new Promise<void>((ok) => openStream('/admin/v1/stream', 'not-a-token', { onAttempt() {}, onState: (x: string) => end.push(x), onUnauthorized: () => { unauthorized = true; ok(); } }));
      return { states, gap: tries[2]! - tries[1]!, unauthorized, end };
    }, ADMIN);
    assert.deepEqual(got.states.slice(0, 3), ['connecting', 'reconnecting', 'reconnecting']);
    assert.ok(got.gap >= 700, `waited ${got.gap} ms before trying again`);
    assert.equal(got.unauthorized, true);
    assert.deepEqual(got.end, ['connecting', 'closed']);
    assert.deepEqual(errors.filter((e) => !/status of 401/.test(e)), [], 'nothing but the 401 asked for');
    await page.context().close();
  });

  test('operator: a published delivery, its attempts, a retry seen live, pause and resume; then a portal shows one tenant only', async () => {
    const rxA = await new Receiver((_r, n) => (n === 1 ? { status: 500, body: HOSTILE_BODY } : { status: 200, body: 'thanks' })).start();
    const rxB = await new Receiver(() => ({ status: 200, body: 'b ok' })).start();
    receivers.push(rxA, rxB);
    const a = await h.tenant(HOSTILE_NAME);
    const b = await h.tenant('Bluth Company');
    const subA = await h.call('POST', '/api/v1/endpoints', a.credentials.api_token, { url: `${rxA.url}/hooks/a${HOSTILE_QUERY}`, description: HOSTILE_DESCRIPTION });
    assert.equal(subA.status, 201, JSON.stringify(subA.body));
    const urlB = `${rxB.url}/b-private-hook`;
    const subB = await h.call('POST', '/api/v1/endpoints', b.credentials.api_token, { url: urlB });
    assert.equal(subB.status, 201, JSON.stringify(subB.body));
    const pubA = await h.publish({ tenant_id: a.id, entity: 'Employee', event: 'Add', entity_id: '42', data: { name: 'José' } });
    const pubB = await h.publish({ tenant_id: b.id, entity: 'Employee', event: 'Update', entity_id: '7' });
    await rxA.waitFor(1);
    await rxB.waitFor(1);
    const deliveryOf = async (eventId: string) => (await h.admin('GET', `/admin/v1/deliveries?event_id=${eventId}`)).body.data[0];
    const dA = await deliveryOf(pubA.id);
    const dB = await deliveryOf(pubB.id);
    await eventually(async () => (await h.admin('GET', `/admin/v1/deliveries/${dA.id}`)).body.attempt_log.length === 1, 5000, 'the first attempt recorded');

    const { page, errors } = await openPage();
    await page.goto(`${h.url}/dashboard/`);
    await page.getByLabel('Token').fill(ADMIN);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByText('Operator', { exact: true }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('herald.dashboard.token')), ADMIN, 'the token is kept in sessionStorage');
    assert.equal(await page.evaluate(() => localStorage.length + document.cookie.length), 0, 'and nowhere else');
    assert.ok(!page.url().includes(ADMIN), 'no token in the address');

    // The delivery the test published, with its first (failed) attempt.
    const deliveries = page.getByRole('table', { name: 'Deliveries' });
    const rowA = deliveries.getByRole('row').filter({ has: page.getByRole('button', { name: `Open delivery ${dA.id}` }) });
    await rowA.waitFor();
    assert.match(await rowA.innerText(), /pending/);
    assert.match(await rowA.innerText(), /Employee\.Add/);
    await page.getByRole('button', { name: `Open delivery ${dA.id}` }).click();
    const detail = page.getByRole('region', { name: 'Delivery details' });
    const first = detail.getByRole('listitem', { name: 'Attempt 1' });
    await first.waitFor();
    assert.match(await first.innerText(), /500/);
    // The hostile body is shown as text, exactly, and ran nothing.
    assert.equal(await detail.getByLabel('Response to attempt 1').textContent(), HOSTILE_BODY);
    const sent = await detail.getByRole('table', { name: 'Request headers of attempt 1' }).innerText();
    assert.match(sent, /webhook-id/i, 'the request headers Herald sent');
    assert.match(sent, new RegExp(pubA.id), 'webhook-id is the event id');
    await page.screenshot({ path: join(shots, 'operator-delivery.png') });

    // Retry: the receiver gets it, and the new attempt appears without a reload.
    await page.evaluate(() => { (window as any).__sameDocument = true; });
    await detail.getByRole('button', { name: 'Retry delivery' }).click();
    await rxA.waitFor(2);
    const second = detail.getByRole('listitem', { name: 'Attempt 2' });
    await second.waitFor();
    assert.match(await second.innerText(), /200/);
    await eventually(async () => /succeeded/.test(await rowA.innerText()), 5000, 'the row shows the delivery succeeded');
    // The Live tab has it too, and only the stream could have put it there.
    await page.getByRole('tab', { name: /Live/ }).click();
    const live = page.getByRole('table', { name: 'Live attempts' });
    await live.getByRole('row').filter({ has: page.getByRole('button', { name: `Open delivery ${dA.id}` }) }).filter({ hasText: '200' }).waitFor();
    assert.equal(await page.evaluate(() => (window as any).__sameDocument), true, 'no reload happened');

    // Pause and resume A's subscription.
    await page.getByRole('tab', { name: 'Subscriptions' }).click();
    const subs = page.getByRole('table', { name: 'Subscriptions' });
    const pause = subs.getByRole('button', { name: `Pause ${subA.body.url}` });
    await pause.click();
    await subs.getByRole('button', { name: `Resume ${subA.body.url}` }).waitFor();
    assert.equal((await h.call('GET', `/api/v1/endpoints/${subA.body.id}`, a.credentials.api_token)).body.paused, true);
    assert.match(await subs.getByRole('row').filter({ hasText: '/hooks/a' }).innerText(), /paused/);
    await subs.getByRole('button', { name: `Resume ${subA.body.url}` }).click();
    await subs.getByRole('button', { name: `Pause ${subA.body.url}` }).waitFor();
    assert.equal((await h.call('GET', `/api/v1/endpoints/${subA.body.id}`, a.credentials.api_token)).body.paused, false);

    // Filters and pages: 55 more deliveries of B's make a second page.
    const more = Array.from({ length: 55 }, (_, i) => ({ tenant_id: b.id, entity: 'Employee', event: 'Update', entity_id: `m${i}` }));
    assert.equal((await h.admin('POST', '/admin/v1/events/batch', { events: more })).status, 202);
    await page.getByRole('tab', { name: 'Deliveries' }).click();
    const shown = page.getByRole('tabpanel');
    const rows = deliveries.locator('tbody tr');
    const settled = () => page.waitForFunction(() => !document.querySelector('table[aria-label="Deliveries"][aria-busy]'));
    await shown.getByRole('button', { name: 'Refresh' }).click();
    await eventually(async () => (await rows.count()) === 50, 5000, 'a full first page');
    await shown.getByRole('button', { name: 'Older →' }).click();
    await eventually(async () => (await rows.count()) === 7, 5000, 'the second page: 57 deliveries in all');
    assert.equal(await shown.getByRole('button', { name: 'Older →' }).isDisabled(), true, 'no third page');
    await shown.getByRole('button', { name: '← Newer' }).click();
    await eventually(async () => (await rows.count()) === 50, 5000, 'back to the first page');
    await shown.getByLabel('Tenant', { exact: true }).selectOption(a.id);
    await eventually(async () => (await rows.count()) === 1, 5000, "tenant A's one delivery");
    assert.equal(await rows.first().getAttribute('data-id'), dA.id);
    await shown.getByLabel('Tenant', { exact: true }).selectOption('');
    await shown.getByLabel('Event type', { exact: true }).fill('Employee.Add');
    await shown.getByLabel('Event type', { exact: true }).press('Enter');
    await eventually(async () => (await rows.count()) === 1, 5000, 'the one Employee.Add');
    await shown.getByLabel('Event type', { exact: true }).fill('');
    await shown.getByLabel('Status', { exact: true }).selectOption('succeeded');
    await settled();
    await eventually(async () => (await rows.count()) >= 2, 5000, 'succeeded ones');
    for (const text of await rows.allInnerTexts()) assert.match(text, /succeeded/);
    await shown.getByLabel('Time range', { exact: true }).selectOption('custom');
    await shown.getByLabel('From', { exact: true }).fill('2020-01-01T00:00:00');
    await shown.getByLabel('To', { exact: true }).fill('2020-01-02T00:00:00');
    await shown.getByText('No deliveries match.').waitFor();
    await shown.getByRole('button', { name: 'Clear' }).click();
    await eventually(async () => (await rows.count()) === 50, 5000, 'every delivery again');
    assert.equal(await page.evaluate(() => (window as any).__pwned ?? null), null, 'no hostile markup ran');
    assert.deepEqual(errors, []);

    // Log out: the token is gone.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);

    // ---- the portal, through a link the operator's API minted for tenant A ----
    const link = await h.admin('POST', '/admin/v1/portal-links', { tenant_id: a.id });
    assert.equal(link.status, 201, JSON.stringify(link.body));
    assert.match(link.body.url, /\/dashboard\/#portal=/);
    const portal = await openPage();
    const p = portal.page;
    await p.goto(link.body.url);
    await p.getByRole('tab', { name: 'Deliveries' }).waitFor();
    assert.ok(!p.url().includes('portal='), 'the token leaves the address bar');
    assert.equal(await p.locator('header .role').innerText(), `Portal · ${HOSTILE_NAME}`);
    const pd = p.getByRole('table', { name: 'Deliveries' });
    await pd.getByRole('button', { name: `Open delivery ${dA.id}` }).waitFor();

    // Rotate A's secret: shown once, with its warning.
    await p.getByRole('tab', { name: 'Subscriptions' }).click();
    const ps = p.getByRole('table', { name: 'Subscriptions' });
    await ps.getByRole('button', { name: `Rotate the secret of ${subA.body.url}` }).click();
    const panel = p.getByRole('alert', { name: 'New signing secret' });
    const secret = await panel.getByRole('textbox', { name: 'New signing secret' }).inputValue();
    assert.match(secret, /^whsec_/);
    assert.notEqual(secret, subA.body.secret);
    assert.match(await panel.innerText(), /only this once/);
    await p.screenshot({ path: join(shots, 'portal-secret.png') });
    await panel.getByRole('button', { name: 'I have saved it' }).click();
    assert.equal(await p.getByRole('alert', { name: 'New signing secret' }).count(), 0);

    // A test event arrives at A's receiver, signed with the new secret.
    await ps.getByRole('button', { name: `Send a test event to ${subA.body.url}` }).click();
    await rxA.waitFor(3);
    const test = rxA.received[2]!;
    const headers = Object.fromEntries(Object.entries(test.headers).map(([k, v]) => [k, String(v)]));
    assert.doesNotThrow(() => new Webhook(secret).verify(test.body, headers), 'the test event verifies with the new secret');
    await p.getByRole('status').filter({ hasText: 'Test event sent' }).waitFor();

    // Retry all failed: none are failed, and it says so.
    await p.getByRole('tab', { name: 'Deliveries' }).click();
    await p.getByRole('button', { name: 'Retry all failed' }).click();
    await p.getByRole('status').filter({ hasText: /Retried 0 failed deliveries/ }).waitFor();

    // The test event's attempt arrives live in the portal; B's record is nowhere on the page.
    await h.publish({ tenant_id: b.id, entity: 'Employee', event: 'Add', entity_id: '8' });
    await rxB.waitFor(2);
    await p.getByRole('tab', { name: /Live/ }).click();
    await p.getByRole('table', { name: 'Live attempts' }).getByRole('row').filter({ hasText: '/hooks/a' }).first().waitFor();
    await p.getByRole('tab', { name: 'Deliveries' }).click();
    await p.getByRole('button', { name: 'Refresh' }).first().click();
    await pd.getByRole('button', { name: `Open delivery ${dA.id}` }).waitFor();
    for (const tab of ['Deliveries', 'Subscriptions', 'Live']) {
      await p.getByRole('tab', { name: new RegExp(tab) }).click();
      const html = await p.content();
      assert.ok(!html.includes(dB.id), `B's delivery id is not on the ${tab} tab`);
      assert.ok(!html.includes('b-private-hook'), `B's subscription URL is not on the ${tab} tab`);
      assert.ok(!html.includes(b.id), `B's tenant id is not on the ${tab} tab`);
    }
    const shot = join(shots, 'portal.png');
    await p.screenshot({ path: shot });
    console.log(`dashboard screenshots: ${shots}`);
    assert.equal(await p.evaluate(() => (window as any).__pwned ?? null), null, 'no hostile markup ran in the portal');
    assert.deepEqual(portal.errors, []);
  });
});
