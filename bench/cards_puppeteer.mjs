// The peer for bench/cards.sh: Puppeteer driving the same Chromium the same
// way the reference did — one browser per concurrent render, one
// reused tab each, page.setContent + page.screenshot — on the same pages
// (written by `card_bench html`), with the template's assets served from
// memory through request interception and everything else aborted.
//
//   node bench/cards_puppeteer.mjs TEMPLATES_DIR PAGES_DIR BROWSERS SECONDS
//
// Prints `puppeteer {template} {format} {browsers} {p50 ms} {p95 ms} {cards/s} {KiB}`.
import { readFileSync, readdirSync, statSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';

const require = createRequire(join(process.env.PUPPETEER_DIR, 'x.js'));
const puppeteer = require('puppeteer-core');

const [root, pages, browsersArg, secondsArg] = process.argv.slice(2);
const browsers = Number(browsersArg);
const seconds = Number(secondsArg);
const ORIGIN = 'https://card.kiln';
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run',
  '--disable-dev-shm-usage', '--hide-scrollbars', '--font-render-hinting=none',
];

const files = new Map();
function walk(dir, prefix) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, `${prefix}${name}/`);
    else files.set(`${prefix}${name}`, readFileSync(path));
  }
}
walk(join(root, 'cards'), '/');
const types = { css: 'text/css', svg: 'image/svg+xml', woff2: 'font/woff2', png: 'image/png', jpg: 'image/jpeg' };
const SHELL = '<!doctype html><html><head></head><body></body></html>';

async function openTab(template) {
  const profile = mkdtempSync(join(tmpdir(), 'kiln-puppeteer-'));
  const browser = await puppeteer.launch({
    executablePath: process.env.KILN_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...FLAGS, `--user-data-dir=${profile}`],
    ignoreDefaultArgs: ['--enable-automation'],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 630, deviceScaleFactor: 1 });
  await page.setRequestInterception(true);
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(`${ORIGIN}/`)) return request.abort('blockedbyclient');
    const path = url.slice(ORIGIN.length).split(/[?#]/)[0];
    if (path === `/${template}/`) {
      return request.respond({ status: 200, contentType: 'text/html', body: SHELL });
    }
    const body = files.get(path);
    if (!body) return request.respond({ status: 404, body: '' });
    const ext = path.split('.').pop();
    return request.respond({
      status: 200,
      contentType: types[ext] || 'application/octet-stream',
      headers: { 'cache-control': 'public, max-age=31536000, immutable' },
      body,
    });
  });
  await page.goto(`${ORIGIN}/${template}/`);
  return { browser, page, profile };
}

async function card(page, html, type) {
  await page.setContent(html, { waitUntil: 'load' });
  await page.evaluate(() => document.fonts.ready.then(() => true));
  const options = { type, captureBeyondViewport: false };
  if (type === 'jpeg') options.quality = 85;
  return page.screenshot(options);
}

function percentile(sorted, p) {
  return sorted[Math.round((sorted.length - 1) * p)];
}

for (const template of ['article', 'stats']) {
  const html = readFileSync(join(pages, `${template}.html`), 'utf8');
  const tabs = await Promise.all(Array.from({ length: browsers }, () => openTab(template)));
  for (const [label, type] of [['jpg', 'jpeg'], ['png', 'png'], ['webp', 'webp']]) {
    for (const { page } of tabs) for (let i = 0; i < 3; i++) await card(page, html, type);
    const until = performance.now() + seconds * 1000;
    const started = performance.now();
    const samples = [];
    await Promise.all(tabs.map(async ({ page }) => {
      while (performance.now() < until) {
        const t = performance.now();
        const shot = await card(page, html, type);
        samples.push([performance.now() - t, shot.length]);
      }
    }));
    const elapsed = (performance.now() - started) / 1000;
    const ms = samples.map((s) => s[0]).sort((a, b) => a - b);
    const kib = samples.reduce((a, s) => a + s[1], 0) / samples.length / 1024;
    console.log(`puppeteer ${template} ${label} ${browsers} ${percentile(ms, 0.5).toFixed(1)} ${percentile(ms, 0.95).toFixed(1)} ${(samples.length / elapsed).toFixed(1)} ${kib.toFixed(0)}`);
  }
  for (const { browser, profile } of tabs) {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

// Cold start: launch, load the page, first JPEG card.
const html = readFileSync(join(pages, 'stats.html'), 'utf8');
const t0 = performance.now();
const tab = await openTab('stats');
const launched = performance.now() - t0;
await card(tab.page, html, 'jpeg');
console.log(`puppeteer cold ${launched.toFixed(0)} ${(performance.now() - t0).toFixed(0)}`);
await tab.browser.close();
rmSync(tab.profile, { recursive: true, force: true });
