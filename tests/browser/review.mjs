// Drives the review page in headless Chromium: sign in with the token, see the seeded events,
// acknowledge one, open the employee page and check the map is drawn; saves a screenshot.
//   node review.mjs ADMIN_URL TOKEN SCREENSHOT_PATH
import { launch, check, tally } from './lib.mjs';
import assert from 'node:assert/strict';

const [base, token, shot] = process.argv.slice(2);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10000);
  // Nothing may be fetched from anywhere but the admin listener.
  const foreign = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });

  await check('unauthenticated visit shows the login form', async () => {
    const r = await page.goto(base + '/');
    assert.equal(r.status(), 401);
    await page.waitForSelector('input[name=token]');
  });
  await check('sign in with the token', async () => {
    await page.fill('input[name=token]', token);
    await Promise.all([page.waitForURL(base + '/'), page.click('button[type=submit]')]);
  });
  await check('the list shows the seeded mismatches', async () => {
    const rows = await page.locator('#events tbody tr[data-id]').count();
    assert.ok(rows >= 3, `only ${rows} rows`);
    const text = await page.textContent('#events');
    assert.match(text, /sanctioned_country/);
    assert.match(text, /e1042/);
  });
  await check('the queue opens with the employees ranked by evidence', async () => {
    const first = await page.locator('#ranking tbody tr').first().textContent();
    assert.match(first, /e1042/);
    assert.match(first, /sanctioned_country ×1/);
  });
  await check('filter by reason', async () => {
    await page.goto(base + '/?reason=hosting_provider&status=open');
    const text = await page.textContent('#events');
    assert.doesNotMatch(text, /sanctioned_country/);
    assert.match(text, /hosting_provider/);
    await page.goto(base + '/');
  });
  let ackedId;
  await check('acknowledge an event with a note', async () => {
    const form = page.locator('form.ack').first();
    ackedId = await form.getAttribute('data-id');
    await form.locator('input[name=reviewer]').fill('Carol (IT)');
    await form.locator('input[name=note]').fill('called, confirmed travel');
    await form.locator('button').click();
    await page.waitForSelector(`tr[data-id="${ackedId}"] .acked`);
    await page.goto(base + '/?status=acked');
    assert.match(await page.textContent('#events'), /called, confirmed travel/);
    await page.goto(base + '/?status=open');
    assert.equal(await page.locator(`tr[data-id="${ackedId}"]`).count(), 0, 'still listed as open');
    await page.goto(base + '/?status=all');
    await page.screenshot({ path: shot.replace('employee', 'list'), fullPage: true });
  });
  await check('employee page draws the map with home and sightings', async () => {
    await page.goto(base + '/employees/e1042');
    const land = await page.locator('#map path.land').boundingBox();
    assert.ok(land && land.width > 200, 'land outline not drawn');
    const d = await page.getAttribute('#map path.land', 'd');
    assert.ok(d.length > 10000, 'outline too short');
    assert.equal(await page.locator('#map #home').count(), 1, 'no home radius');
    assert.ok(await page.locator('#map circle.sighting').count() >= 2, 'no sightings');
    assert.ok(await page.locator('#timeline tbody tr').count() >= 3);
    await page.screenshot({ path: shot, fullPage: true });
  });
  await check('no request left the admin listener', async () => {
    assert.deepEqual(foreign, []);
  });
} finally {
  await browser.close();
}
console.log(`browser: ${tally.passed} passed, ${tally.failed} failed`);
process.exit(tally.failed ? 1 : 0);
