// What the browser tests share: headless Chromium from the system (no download), and a TAP-like
// `check` that counts and keeps going so one failure does not hide the next.
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
    timeout: 20000,
  });
}

export const tally = { passed: 0, failed: 0 };

export async function check(name, fn) {
  try { await fn(); tally.passed++; console.log(`ok - ${name}`); }
  catch (e) { tally.failed++; console.log(`not ok - ${name}: ${e.message}`); }
}
