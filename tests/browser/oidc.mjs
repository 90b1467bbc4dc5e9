// Drives the console's sign-in through the test identity provider (oidc-idp.mjs) in headless
// Chromium: roles from groups, the case view (screenshot), changes recorded under the person's
// name, CSRF and role refusals, sign-out revoking the session, and the token form switched off.
//   node oidc.mjs ADMIN_URL SCREENSHOT_DIR
import { launch, check, tally } from './lib.mjs';
import assert from 'node:assert/strict';

const [base, shots] = process.argv.slice(2);
const browser = await launch();
let lastCallback = '';
async function signIn(page, who) {
  page.on('request', (r) => { if (r.url().includes('/oidc/callback')) lastCallback = r.url(); });
  await page.goto(base + '/');
  await Promise.all([page.waitForURL(/\/authorize/), page.click('#sso')]);
  await page.click(`#as-${who}`);
  await page.waitForURL(base + '/', { timeout: 10000 });
}
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(10000);

  await check('the login page offers the company sign-in, not the token', async () => {
    const r = await page.goto(base + '/');
    assert.equal(r.status(), 401);
    await page.waitForSelector('#sso');
    assert.equal(await page.locator('input[name=token]').count(), 0);
  });
  await check('the token form is refused when the console signs in through the provider', async () => {
    const status = await page.evaluate(async () => (await fetch('/login', { method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'token=x' })).status);
    assert.equal(status, 403);
  });
  await check('rita (sec-analysts) signs in through the provider', async () => {
    await signIn(page, 'rita');
    assert.match(await page.textContent('header'), /Cases/);
  });
  let caseUrl;
  await check('the laptop farm is a case, and its view shows members, map, timeline, trail', async () => {
    await page.goto(base + '/cases');
    const row = page.locator('#cases tbody tr[data-case]').first();
    assert.match(await row.textContent(), /ann.*bob.*cat/);
    await Promise.all([page.waitForURL(/\/cases\/\d+$/), row.locator('a').first().click()]);
    caseUrl = page.url();
    assert.match(await page.textContent('#members'), /ann, bob, cat/);
    assert.ok(await page.locator('svg.map').count() >= 1);
    assert.ok(await page.locator('#timeline tbody tr').count() >= 3);
    await page.screenshot({ path: `${shots}/case-view.png`, fullPage: true });
  });
  await check('rita takes the case: the trail names her and where from', async () => {
    await page.selectOption('#change select[name=state]', 'investigating');
    await page.fill('#change input[name=owner]', 'rita@example.com');
    await page.fill('#change textarea[name=note]', 'three badges on one home line');
    await Promise.all([page.waitForLoadState('load'), page.click('#change button[type=submit]')]);
    await page.waitForFunction(() => document.querySelector('#trail').textContent.includes('investigating'));
    const trail = await page.textContent('#trail');
    assert.match(trail, /rita@example\.com/);
    assert.match(trail, /127\.0\.0\.1 via/);
    assert.match(trail, /three badges on one home line/);
    await page.screenshot({ path: `${shots}/case-view-worked.png`, fullPage: true });
  });
  await check('rita acknowledges an event as herself: the form asks for no name', async () => {
    await page.goto(base + '/');
    await page.waitForSelector('form.ack');
    await page.waitForFunction(() => document.querySelectorAll('form.ack input[name=reviewer]').length === 0);
    const form = page.locator('form.ack').first();
    assert.match(await form.textContent(), /as rita@example\.com/);
    await form.locator('input[name=note]').fill('seen with the case');
    await form.locator('button[type=submit]').click();
    await page.waitForSelector('.acked');
    assert.match(await page.locator('.acked').first().textContent(), /rita@example\.com/);
  });
  await check('a change without the CSRF token is refused', async () => {
    const r = await page.evaluate(async (u) => {
      const res = await fetch(u.replace('/cases/', '/api/cases/'), { method: 'POST',
        headers: { 'Content-Type': 'application/json' }, body: '{"note":"forged"}' });
      return [res.status, await res.text()];
    }, caseUrl);
    assert.equal(r[0], 403);
    assert.match(r[1], /CSRF/);
  });
  await check('signing out revokes the session on the server', async () => {
    const cookies = await ctx.cookies();
    await page.goto(base + '/logout');
    const ctx2 = await browser.newContext();
    await ctx2.addCookies(cookies.filter((c) => c.name === 'locgate_admin'));
    const p2 = await ctx2.newPage();
    const r = await p2.goto(base + '/cases');
    assert.equal(r.status(), 401, 'the old cookie no longer works');
    await ctx2.close();
  });
  await check('vic (helpdesk) may look but not change', async () => {
    await signIn(page, 'vic');
    await page.goto(caseUrl);
    await page.fill('#change textarea[name=note]', 'vic was here');
    await page.click('#change button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#change .result').textContent.length > 0);
    assert.match(await page.textContent('#change .result'), /viewer/);
    await page.goto(base + '/logout');
  });
  await check('nora (no console group) gets no session', async () => {
    await page.goto(base + '/');
    await Promise.all([page.waitForURL(/\/authorize/), page.click('#sso')]);
    await page.click('#as-nora');
    await page.waitForURL(/\/oidc\/callback/);
    assert.match(await page.textContent('body'), /no console role/);
    const r = await page.goto(base + '/cases');
    assert.equal(r.status(), 401);
  });
  await check('a replayed callback (the same state and code) is refused', async () => {
    await signIn(page, 'rita');
    assert.ok(lastCallback.includes('code='));
    const r = await page.goto(lastCallback);
    assert.equal(r.status(), 401);
    assert.match(await page.textContent('body'), /already used/);
  });
} finally {
  await browser.close();
}
console.log(`${tally.passed} passed, ${tally.failed} failed`);
process.exit(tally.failed ? 1 : 0);
