'use strict';
// Browser test of the demo's chat page (examples/static/chat.html, server examples/src/chat.rs):
// Debian's Chromium, driven by playwright-core, opens the page twice in two separate browser
// contexts (separate cookies and storage) and checks rooms, renames, chat lines and the user list,
// over sockets that agreed to permessage-deflate (the page's socket.extensions).
//
// Run by ci/browser.sh, which starts the server and sets DEMO_URL=http(s)://127.0.0.1:PORT.
// Over https the page's socket must be wss:// (checked), and Chromium trusts only the server key
// whose SPKI hash is in DEMO_SPKI (--ignore-certificate-errors-spki-list: any other certificate
// still fails, as it would for a user).
// Needs: apt-get install -y chromium; npm ci --prefix ci/browser.
// Env: DEMO_URL (required), DEMO_SPKI (base64 SHA-256 of the server's SubjectPublicKeyInfo, for
// https), SHOT (screenshot name, default chat), CHROMIUM (default /usr/bin/chromium).
// Screenshot of page A at the end: target/browser/$SHOT.png (on failure: $SHOT-*-failure.png).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const BASE = (process.env.DEMO_URL || '').replace(/\/+$/, '');
const SPKI = process.env.DEMO_SPKI || '';
const SHOT = process.env.SHOT || 'chat';
// The socket URL the page must open: wss:// on an https page, ws:// on an http one.
const SOCKET_BASE = BASE.replace(/^http/, 'ws') + '/csp/user/Chat.Server.cls';
const OUT = path.resolve(__dirname, '..', '..', 'target', 'browser');
const WAIT = 10000; // every single wait is bounded by this
const ABSENT = 1500; // how long a message must stay absent from the other room's page
const tag = Date.now().toString(36); // makes the chat lines of this run unique

// ---- page state, read in the page -------------------------------------------------------------

/** The online list, as the page shows it. */
const users = (page) => page.$$eval('#users li', (lis) => lis.map((li) => li.textContent));

/** The chat lines as [user, text] ("user" without the trailing ':'). */
const chatLines = (page) =>
  page.$$eval('#messages li.chat', (lis) =>
    lis.map((li) => [
      li.querySelector('.user').textContent.replace(/:$/, ''),
      li.querySelector('.text').textContent,
    ]));

/** Everything the page shows that a test failure message should include. */
async function snapshot(page) {
  return page.evaluate(() => ({
    url: location.href,
    state: document.body.dataset.state,
    wsid: document.body.dataset.wsid,
    status: document.getElementById('status').textContent,
    users: [...document.querySelectorAll('#users li')].map((li) => li.textContent),
    messages: [...document.querySelectorAll('#messages li')]
      .map((li) => [...li.children].map((span) => span.textContent).join(' ')),
  }));
}

/** page.waitForFunction, bounded, with the page's state in the error on timeout. */
async function waitFor(page, what, fn, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT, polling: 50 });
  } catch (e) {
    let state;
    try { state = JSON.stringify(await snapshot(page)); } catch (e2) { state = `(page unreadable: ${e2.message})`; }
    throw new Error(`timed out after ${WAIT} ms waiting for ${what}; page state: ${state}\n${e.message}`);
  }
}

const waitOpen = (page, name) =>
  waitFor(page, `${name}: connected (body[data-state=open] and a WSID)`,
    () => document.body.dataset.state === 'open' && !!document.body.dataset.wsid);

const waitUsers = (page, name, expected) =>
  waitFor(page, `${name}: user list ${JSON.stringify(expected)}`,
    (want) => JSON.stringify([...document.querySelectorAll('#users li')].map((li) => li.textContent))
      === JSON.stringify(want),
    expected);

const waitLine = (page, name, user, text) =>
  waitFor(page, `${name}: chat line ${JSON.stringify(user + ': ' + text)}`,
    ([u, t]) => [...document.querySelectorAll('#messages li.chat')].some((li) =>
      li.querySelector('.user').textContent === u + ':' && li.querySelector('.text').textContent === t),
    [user, text]);

/** The extensions the page's socket agreed to (chat.html's top-level `socket`). */
const socketExtensions = (page) => page.evaluate(() => socket.extensions);

/** The page's socket agreed to permessage-deflate: Chromium offers it, our servers accept it. */
async function assertDeflate(page, name) {
  const agreed = await socketExtensions(page);
  assert.match(agreed, /^permessage-deflate\b/, `${name}: the socket's agreed extensions (socket.extensions)`);
}

/** Types `text` into the form and clicks Send, then checks the input was cleared (= sent). */
async function say(page, name, text) {
  await page.locator('#input').fill(text, { timeout: WAIT });
  await page.locator('#send').click({ timeout: WAIT });
  await waitFor(page, `${name}: input cleared after sending ${JSON.stringify(text)}`,
    () => document.getElementById('input').value === '');
}

// ---- the scenario -----------------------------------------------------------------------------

describe('chat page in Chromium', { timeout: 60000 }, () => {
  let browser;
  let pageA;
  let pageB;
  const sockets = { A: [], B: [] }; // URLs of the WebSockets each page opened
  const errors = []; // uncaught page errors, checked at the end of every step
  let broken = false; // a step failed: the later ones depend on it and are skipped

  before(async () => {
    assert.ok(BASE, 'DEMO_URL must be set (http://127.0.0.1:PORT), see ci/browser.sh');
    assert.ok(!BASE.startsWith('https:') || SPKI, 'DEMO_SPKI must be set for an https DEMO_URL');
    const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'];
    // Test only: trust this one server key, nothing else (no blanket --ignore-certificate-errors).
    if (SPKI) args.push(`--ignore-certificate-errors-spki-list=${SPKI}`);
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args,
      timeout: 30000,
    });
    // Two contexts: separate cookies/sessions, like two different browsers.
    const open = async (name) => {
      const context = await browser.newContext({ viewport: { width: 900, height: 520 } });
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
      page.on('websocket', (ws) => sockets[name].push(ws.url()));
      return page;
    };
    pageA = await open('A');
    pageB = await open('B');
  });

  after(async () => {
    if (browser) await browser.close();
  });

  /** Runs a step; on failure saves screenshots of the pages still open, then rethrows. */
  async function step(t, name, body) {
    if (broken) {
      t.skip('an earlier step failed');
      return;
    }
    try {
      await body();
      assert.deepEqual(errors, [], 'uncaught errors in the page');
    } catch (e) {
      broken = true;
      fs.mkdirSync(OUT, { recursive: true });
      for (const [p, n] of [[pageA, 'A'], [pageB, 'B']]) {
        if (p && !p.isClosed()) {
          await p.screenshot({ path: path.join(OUT, `${SHOT}-${name}-${n}-failure.png`) }).catch(() => {});
        }
      }
      throw e;
    }
  }

  const a1 = `hello red from Alice ${tag}`;
  const b1 = `hello blue from <b>Bob</b> & co ${tag}`; // shown as text, never as markup
  const a2 = `Alice to everyone in red: café ✓ ${tag}`;
  const b2 = `Bob joined red ${tag}`;

  it('a: two rooms are separate (red: A, blue: B)', { timeout: 30000 }, (t) => step(t, 'a', async () => {
    await pageA.goto(`${BASE}/?room=red`, { timeout: WAIT });
    await pageB.goto(`${BASE}/?room=blue`, { timeout: WAIT });
    await waitOpen(pageA, 'A');
    await waitOpen(pageB, 'B');
    assert.equal(await pageA.textContent('#room'), 'red');
    assert.equal(await pageB.textContent('#room'), 'blue');
    assert.equal(await pageA.getAttribute('#status', 'class'), 'open');
    // The page came over the scheme asked for, and its socket uses the matching one (wss:// on
    // https): the chat below runs over it.
    assert.equal(await pageA.evaluate(() => location.protocol), new URL(BASE).protocol);
    assert.deepEqual(sockets.A, [`${SOCKET_BASE}?room=red`], 'the sockets page A opened');
    assert.deepEqual(sockets.B, [`${SOCKET_BASE}?room=blue`], 'the sockets page B opened');
    // Both sockets agreed to permessage-deflate: every chat line below came compressed.
    await assertDeflate(pageA, 'A');
    await assertDeflate(pageB, 'B');

    // Before renaming, each socket is listed as Guest-<first 6 characters of its WSID>.
    const wsidA = await pageA.evaluate(() => document.body.dataset.wsid);
    const wsidB = await pageB.evaluate(() => document.body.dataset.wsid);
    assert.notEqual(wsidA, wsidB);
    await waitUsers(pageA, 'A', [`Guest-${wsidA.slice(0, 6)}`]);
    await waitUsers(pageB, 'B', [`Guest-${wsidB.slice(0, 6)}`]);

    await say(pageA, 'A', '/nick Alice');
    await say(pageB, 'B', '/nick Bob');
    await waitUsers(pageA, 'A', ['Alice']);
    await waitUsers(pageB, 'B', ['Bob']);

    await say(pageA, 'A', a1);
    await waitLine(pageA, 'A', 'Alice', a1);
    await pageB.waitForTimeout(ABSENT); // bounded: red's line must not reach blue meanwhile
    assert.deepEqual(await chatLines(pageB), [], 'B (blue) must not see red\'s chat');

    await say(pageB, 'B', b1);
    await waitLine(pageB, 'B', 'Bob', b1);
    await pageA.waitForTimeout(ABSENT);
    assert.deepEqual(await chatLines(pageA), [['Alice', a1]], 'A (red) must see only its own line');
    assert.deepEqual(await chatLines(pageB), [['Bob', b1]]);
    assert.equal(await pageB.locator('#messages b').count(), 0, 'chat text must not become markup');

    // A chat line is "<Sent> <User>: <Message>" with Sent as YYYY-MM-DD HH:MM:SS.
    const sent = await pageA.textContent('#messages li.chat .sent');
    assert.match(sent, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    // The user lists did not change meanwhile.
    assert.deepEqual(await users(pageA), ['Alice']);
    assert.deepEqual(await users(pageB), ['Bob']);
  }));

  it('b: B moves to red; both see both names and each other\'s lines', { timeout: 30000 }, (t) => step(t, 'b', async () => {
    const oldWsidB = await pageB.evaluate(() => document.body.dataset.wsid);
    await pageB.goto(`${BASE}/?room=red`, { timeout: WAIT });
    await waitOpen(pageB, 'B');
    const wsidB = await pageB.evaluate(() => document.body.dataset.wsid);
    assert.notEqual(wsidB, oldWsidB, 'a new page load is a new socket');
    assert.equal(await pageB.textContent('#room'), 'red');
    await assertDeflate(pageB, 'B');

    // A new page has no name yet (chat.html keeps the name only in its JS state): Guest first.
    const guest = `Guest-${wsidB.slice(0, 6)}`;
    await waitUsers(pageA, 'A', ['Alice', guest]);
    await waitUsers(pageB, 'B', ['Alice', guest]);
    await say(pageB, 'B', '/nick Bob');
    await waitUsers(pageA, 'A', ['Alice', 'Bob']);
    await waitUsers(pageB, 'B', ['Alice', 'Bob']);

    await say(pageA, 'A', a2);
    await waitLine(pageA, 'A', 'Alice', a2);
    await waitLine(pageB, 'B', 'Alice', a2);
    await say(pageB, 'B', b2);
    await waitLine(pageB, 'B', 'Bob', b2);
    await waitLine(pageA, 'A', 'Alice', a2);
    await waitLine(pageA, 'A', 'Bob', b2);

    // Exactly these lines, in this order, with the right sender in each .user span.
    assert.deepEqual(await chatLines(pageA), [['Alice', a1], ['Alice', a2], ['Bob', b2]]);
    assert.deepEqual(await chatLines(pageB), [['Alice', a2], ['Bob', b2]]);
    assert.equal(await pageA.locator('#messages li.system').count(), 0, 'no error lines on A');
    assert.equal(await pageB.locator('#messages li.system').count(), 0, 'no error lines on B');
  }));

  it('c: B closes its page; A\'s list goes back to Alice only', { timeout: 30000 }, (t) => step(t, 'c', async () => {
    await pageB.close();
    await waitUsers(pageA, 'A', ['Alice']);
    assert.equal(await pageA.evaluate(() => document.body.dataset.state), 'open');

    fs.mkdirSync(OUT, { recursive: true });
    await pageA.screenshot({ path: path.join(OUT, `${SHOT}.png`) });
  }));
});
