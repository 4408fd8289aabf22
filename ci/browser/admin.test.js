'use strict';
// Browser test of the admin page (crates/ws-server/src/admin/page.html): Debian's Chromium,
// driven by playwright-core, puts a known load on the demo's echo class from a page of the
// demo's origin, opens /admin?token=..., and checks that the numbers shown are the load's, that
// a room's presence is listed, and that the rate chart moves as more load comes.
//
// Run by ci/admin-page.sh, which starts the demo with --metrics --admin-token and sets
// DEMO_URL=http://127.0.0.1:PORT and ADMIN_TOKEN.
// Env: DEMO_URL, ADMIN_TOKEN (required), CHROMIUM (default /usr/bin/chromium).
// Screenshot at the end: target/admin-page.png (printed).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BASE = (process.env.DEMO_URL || '').replace(/\/+$/, '');
const TOKEN = process.env.ADMIN_TOKEN || '';
const SHOT = path.resolve(__dirname, '..', '..', 'target', 'admin-page.png');
const WAIT = 15000;
const ECHO = 'MyApp.MyWebSocketServer';
const SOCKETS = 5;

/** In a page of the demo's origin: opens `n` echo sockets, kept in window.load. */
function openSockets(n) {
  return new Promise((resolve, reject) => {
    const url = location.origin.replace(/^http/, 'ws') + '/csp/user/MyApp.MyWebSocketServer.cls';
    window.load = { sockets: [], echoes: 0 };
    let open = 0;
    for (let i = 0; i < n; i++) {
      const ws = new WebSocket(url);
      ws.onmessage = () => { window.load.echoes += 1; };
      ws.onerror = () => reject(new Error('echo socket failed'));
      ws.onopen = () => { if (++open === n) resolve(); };
      window.load.sockets.push(ws);
    }
  });
}

/** In the load page: every socket sends `count` messages of `size` bytes; resolves once all
 *  echoes so far have come back. */
function send([count, size]) {
  const want = window.load.echoes + count * window.load.sockets.length;
  for (const ws of window.load.sockets) for (let i = 0; i < count; i++) ws.send('x'.repeat(size));
  return new Promise((resolve) => {
    const check = () => (window.load.echoes >= want ? resolve(window.load.echoes) : setTimeout(check, 10));
    check();
  });
}

/** The echo class's row of the classes table, field by field, as the page shows it. */
const echoRow = (page) => page.evaluate((cls) => {
  const tr = document.querySelector(`#classes tr[data-class="${cls}"]`);
  if (!tr) return null;
  return Object.fromEntries([...tr.cells].map((td) => [td.dataset.field, td.textContent]));
}, ECHO);

async function waitFor(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT, polling: 100 });
  } catch (e) {
    const row = await echoRow(page).catch(() => null);
    throw new Error(`timed out waiting for ${what}; echo row: ${JSON.stringify(row)}\n${e.message}`);
  }
}

const rowIs = (page, want) =>
  waitFor(page, `echo row ${JSON.stringify(want)}`, ([cls, w]) => {
    const tr = document.querySelector(`#classes tr[data-class="${cls}"]`);
    if (!tr) return false;
    const got = Object.fromEntries([...tr.cells].map((td) => [td.dataset.field, td.textContent]));
    return Object.entries(w).every(([k, v]) => got[k] === String(v));
  }, [ECHO, want]);

describe('admin page', () => {
  let browser;
  let load;
  let admin;

  before(async () => {
    assert.ok(BASE && TOKEN, 'DEMO_URL and ADMIN_TOKEN must be set (run ci/admin-page.sh)');
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    });
    load = await (await browser.newContext()).newPage();
    admin = await (await browser.newContext({ viewport: { width: 1280, height: 1500 } })).newPage();
  });

  after(async () => {
    if (browser) await browser.close();
  });

  it('answers 401 without the token', async () => {
    const response = await load.goto(`${BASE}/admin`);
    assert.equal(response.status(), 401);
    const wrong = await load.goto(`${BASE}/admin?token=not-${TOKEN}`);
    assert.equal(wrong.status(), 401);
  });

  it('shows the numbers of a known load, a room, and a chart that moves', async () => {
    // A chat page in room "ops": a member for the presence list and the room tables.
    const chat = await (await browser.newContext()).newPage();
    await chat.goto(`${BASE}/?room=ops`);
    await chat.waitForFunction(() => document.body.dataset.state === 'open', null, { timeout: WAIT });

    // The known load: 5 echo sockets, 20 messages of 100 bytes each, every one echoed.
    await load.goto(`${BASE}/admin`); // any page of the demo's origin (401 is fine)
    await load.evaluate(openSockets, SOCKETS);
    assert.equal(await load.evaluate(send, [20, 100]), 100);

    const response = await admin.goto(`${BASE}/admin?token=${encodeURIComponent(TOKEN)}`);
    assert.equal(response.status(), 200);
    await rowIs(admin, { sockets: 5, opened: 5, messages_in: 100, messages_out: 100, bytes_in: 10000, bytes_out: 10000 });
    await waitFor(admin, 'the ops room among the largest rooms', () =>
      [...document.querySelectorAll('#top-rooms td[data-field=room]')].some((td) => td.textContent === 'ops'));
    await admin.locator('#room').fill('ops');
    await admin.locator('#presence-form button').click();
    await waitFor(admin, 'one member of ops in presence', () =>
      document.querySelectorAll('#presence td[data-field=id]').length === 1);
    await waitFor(admin, 'two polls', () => window.admin.polls >= 2);

    // More load over 4 s: the chart gets new points and its pixels change.
    const before = await admin.evaluate(() => ({
      points: window.admin.series.length,
      pixels: document.getElementById('chart-messages').toDataURL(),
    }));
    for (let round = 0; round < 16; round++) {
      await load.evaluate(send, [10, 100]);
      await new Promise((r) => setTimeout(r, 250));
    }
    await rowIs(admin, { sockets: 5, messages_in: 900, messages_out: 900, bytes_in: 90000, bytes_out: 90000 });
    await waitFor(admin, 'the chart to move', (b) =>
      window.admin.series.length > b.points + 2
      && window.admin.series.some((p) => p.messages_in > 0)
      && document.getElementById('chart-messages').toDataURL() !== b.pixels, before);

    // A client closes with 4001: the close codes table says so.
    await load.evaluate(() => window.load.sockets.pop().close(4001, 'done'));
    await rowIs(admin, { sockets: 4 });
    await waitFor(admin, 'close code 4001 listed', ([cls]) =>
      [...document.querySelectorAll('#close-codes tbody tr')].some((tr) =>
        tr.cells[0].textContent === cls && tr.cells[1].textContent === '4001' && tr.cells[2].textContent === '1'),
    [ECHO]);
    const shown = await admin.evaluate(() => ({
      sockets: document.getElementById('sockets').textContent,
      bus: document.getElementById('bus').textContent,
      error: document.getElementById('error').textContent,
    }));
    assert.equal(shown.sockets, '5', 'four echo sockets and the chat page');
    assert.equal(shown.bus, 'single node');
    assert.equal(shown.error, '');

    await admin.screenshot({ path: SHOT, fullPage: true });
    console.log(`admin page screenshot: ${SHOT}`);
    await chat.close();
  });
});
