#!/usr/bin/env node
// Interop check: the Node 'ws' client (pinned in package.json / package-lock.json) against our
// echo servers. Usage: node node_client.js --url ws://127.0.0.1:PORT/ [--profile echo-class]
//   [--ca CA.pem] [--expect-refused]
//
// --profile full (default): autobahn-server's echo, every check below (1 MiB, fragments, a Close
//   with code 4001 and a reason echoed back).
// --profile echo-class: the demo's echo class (MyApp.MyWebSocketServer), which reads at most
//   32656 bytes at a time: text, binary, 20000-byte messages (over one TLS record), fragments,
//   ping/pong and a Close whose code comes back.
// --ca: for wss://, trust only this CA (PEM). --expect-refused: pass only if the TLS handshake
//   fails certificate verification (a client trusting another CA).
//
// Prints one line per check ("ok ..." or "FAIL ...") and exits non-zero if any check failed.
// Every step is bounded by STEP_TIMEOUT_MS, the whole run by OVERALL_TIMEOUT_MS.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const WebSocket = require('ws');
const wsVersion = require('ws/package.json').version;

const STEP_TIMEOUT_MS = 10_000;
const OVERALL_TIMEOUT_MS = 20_000;
const MIB = 1 << 20;
const CLOSE_CODE = 4001;
const CLOSE_REASON = 'bye from node ✓';

const overall = setTimeout(() => {
  console.log(`FAIL overall: no result after ${OVERALL_TIMEOUT_MS / 1000} s`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

let failures = 0;
const ok = (name, detail) => console.log(`ok   ${name}${detail ? ` (${detail})` : ''}`);
const fail = (name, detail) => {
  failures += 1;
  console.log(`FAIL ${name}: ${detail}`);
};

function parseArgs(argv) {
  const value = (name) => {
    const i = argv.indexOf(name);
    return i < 0 ? undefined : argv[i + 1];
  };
  const args = {
    url: value('--url'),
    profile: value('--profile') || 'full',
    ca: value('--ca'),
    expectRefused: argv.includes('--expect-refused'),
  };
  if (!args.url || !['full', 'echo-class'].includes(args.profile)) {
    console.error('usage: node node_client.js --url ws://127.0.0.1:PORT/ [--profile full|echo-class] [--ca CA.pem] [--expect-refused]');
    process.exit(2);
  }
  return args;
}

// Options for the 'ws' client: with --ca, Node's TLS trusts only that CA (verification stays on).
function clientOptions(args) {
  const options = { handshakeTimeout: STEP_TIMEOUT_MS, maxPayload: 4 * MIB };
  if (args.ca) options.ca = fs.readFileSync(args.ca);
  return options;
}

// Short description of a message: its type, length and a prefix.
function describe(buf, isBinary, limit = 20) {
  if (isBinary) {
    const more = buf.length > limit ? '...' : '';
    return `binary ${buf.length} bytes <${buf.subarray(0, limit).toString('hex')}${more}>`;
  }
  const chars = [...buf.toString('utf8')];
  const shown = chars.slice(0, limit).join('') + (chars.length > limit ? '...' : '');
  return `text ${buf.length} bytes ${JSON.stringify(shown)}`;
}

function firstDifference(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}

// Random text whose UTF-8 encoding is exactly `size` bytes, with 1- to 4-byte characters.
function randomText(size) {
  const alphabet = [...'abcdefghijklmnopqrstuvwxyz0123456789 .,éüß€中😀'];
  const parts = [];
  let n = 0;
  while (n < size - 4) {
    const c = alphabet[crypto.randomInt(alphabet.length)];
    parts.push(c);
    n += Buffer.byteLength(c);
  }
  parts.push('x'.repeat(size - n));
  const text = parts.join('');
  if (Buffer.byteLength(text) !== size) throw new Error('randomText: wrong size');
  return text;
}

// Resolves with the arguments of the next `event` on `ws`; rejects on timeout, on an 'error'
// event, or (unless `event` is 'close') when the connection closes first.
function waitFor(ws, event, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${STEP_TIMEOUT_MS / 1000} s waiting for ${what}`));
    }, STEP_TIMEOUT_MS);
    const onEvent = (...args) => {
      cleanup();
      resolve(args);
    };
    const onClose = (code, reason) => {
      cleanup();
      reject(new Error(`connection closed while waiting for ${what}: code=${code} reason=${JSON.stringify(reason.toString())}`));
    };
    const onError = (err) => {
      cleanup();
      reject(err);
    };
    function cleanup() {
      clearTimeout(timer);
      ws.off(event, onEvent);
      ws.off('close', onClose);
      ws.off('error', onError);
    }
    ws.on(event, onEvent);
    if (event !== 'close') ws.on('close', onClose);
    ws.on('error', onError);
  });
}

// Sends `fragments` (one element: a whole message; several: one fragmented message) and checks
// the echo is one message equal to their concatenation, of the same type.
async function echo(ws, name, fragments, isBinary) {
  const expected = Buffer.concat(fragments.map((f) => Buffer.from(f)));
  const reply = waitFor(ws, 'message', `the echo of ${name}`);
  fragments.forEach((f, i) => ws.send(f, { binary: isBinary, fin: i === fragments.length - 1 }));
  const [data, gotBinary] = await reply;
  const got = Buffer.isBuffer(data) ? data : Buffer.from(data);
  if (gotBinary !== isBinary) {
    fail(name, `sent ${describe(expected, isBinary)}, got back ${describe(got, gotBinary)} (wrong message type)`);
  } else if (!got.equals(expected)) {
    const i = firstDifference(got, expected);
    fail(name, `sent ${describe(expected, isBinary)}, got back ${describe(got, gotBinary)}; first difference at byte ${i}`);
  } else {
    ok(name, describe(expected, isBinary) + (fragments.length > 1 ? ` sent in ${fragments.length} frames` : ''));
  }
}

async function checkPing(ws) {
  const payload = Buffer.from([...Buffer.from('ping payload '), 0x00, 0xff]);
  const pong = waitFor(ws, 'pong', 'the pong');
  const t0 = process.hrtime.bigint();
  ws.ping(payload);
  const [data] = await pong;
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (!Buffer.from(data).equals(payload)) {
    fail('ping/pong', `pinged with <${payload.toString('hex')}>, pong carried <${Buffer.from(data).toString('hex')}>`);
  } else {
    ok('ping/pong', `payload <${payload.toString('hex')}>, ${ms.toFixed(1)} ms`);
  }
}

async function checkClose(ws) {
  const closed = waitFor(ws, 'close', 'the Close reply');
  ws.close(CLOSE_CODE, CLOSE_REASON);
  // ws's 'close' event carries the code and reason of the Close frame RECEIVED from the server
  // (1005 with no code, 1006 with no Close frame at all).
  const [code, reasonBuf] = await closed;
  const reason = Buffer.from(reasonBuf).toString('utf8');
  if (code !== CLOSE_CODE || reason !== CLOSE_REASON) {
    fail('close', `sent Close code=${CLOSE_CODE} reason=${JSON.stringify(CLOSE_REASON)}, got back code=${code} reason=${JSON.stringify(reason)}`);
  } else {
    ok('close', `server echoed code=${code} reason=${JSON.stringify(reason)}`);
  }
}

// The peer answers our Close with the same code (RFC 6455 section 5.5.1).
async function checkCloseCode(ws) {
  const closed = waitFor(ws, 'close', 'the Close reply');
  ws.close(1000, 'bye');
  const [code, reasonBuf] = await closed;
  if (code !== 1000) {
    fail('close', `sent Close 1000, got back code=${code} reason=${JSON.stringify(Buffer.from(reasonBuf).toString('utf8'))}`);
  } else {
    ok('close', `server answered code=${code}`);
  }
}

// What the demo's echo class can echo whole: messages under its read length (32656).
function echoClassChecks() {
  const midBinary = crypto.randomBytes(20000);
  const midText = randomText(20000);
  return [
    ['text', (ws) => echo(ws, 'text', ['héllo wörld €'], false)],
    ['binary 0..255', (ws) => echo(ws, 'binary 0..255', [Buffer.from([...Array(256).keys()])], true)],
    ['binary 20000 bytes', (ws) => echo(ws, 'binary 20000 bytes', [midBinary], true)],
    ['text 20000 bytes', (ws) => echo(ws, 'text 20000 bytes', [midText], false)],
    ['fragmented text', (ws) => echo(ws, 'fragmented text', ['héllo ', 'fragmented ', 'wörld €'], false)],
    ['ping/pong', checkPing],
    ['close', checkCloseCode],
  ];
}

// Passes only if the handshake fails certificate verification.
async function expectRefused(args) {
  const ws = new WebSocket(args.url, clientOptions(args));
  try {
    await waitFor(ws, 'open', 'the opening handshake');
    fail('refused', `connected although the CA ${args.ca} signed nothing here`);
    ws.terminate();
  } catch (err) {
    if (/CERT|UNABLE_TO_VERIFY|SELF_SIGNED/.test(err.code || '')) {
      ok('refused', `certificate not trusted: ${err.code}`);
    } else {
      fail('refused', `expected a certificate verification error, got ${err.code || ''} ${err.message}`);
    }
  }
}

async function main() {
  const args = parseArgs(process.argv);
  if (args.expectRefused) {
    await expectRefused(args);
    return;
  }
  const url = args.url;
  const bigBinary = crypto.randomBytes(MIB);
  const bigText = randomText(MIB);
  // "€" is E2 82 AC: split across three fragments, so the server must validate UTF-8 across
  // continuation frames rather than per frame.
  const euro = Buffer.from('€');
  const fragmentedText = [
    Buffer.concat([Buffer.from('héllo fragmented wörld '), euro.subarray(0, 1)]),
    euro.subarray(1, 2),
    Buffer.alloc(0),
    Buffer.concat([euro.subarray(2), Buffer.from(' ✓')]),
  ];
  const fragmentedBinary = [Buffer.from([0, 1, 2]), crypto.randomBytes(70_000), Buffer.alloc(0), Buffer.from([0xfe, 0xff])];

  let checks = [
    ['text', (ws) => echo(ws, 'text', ['héllo wörld €'], false)],
    ['empty text', (ws) => echo(ws, 'empty text', [''], false)],
    ['binary 0..255', (ws) => echo(ws, 'binary 0..255', [Buffer.from([...Array(256).keys()])], true)],
    ['empty binary', (ws) => echo(ws, 'empty binary', [Buffer.alloc(0)], true)],
    ['binary 1 MiB', (ws) => echo(ws, 'binary 1 MiB', [bigBinary], true)],
    ['text 1 MiB', (ws) => echo(ws, 'text 1 MiB', [bigText], false)],
    ['fragmented text', (ws) => echo(ws, 'fragmented text', fragmentedText, false)],
    ['fragmented binary', (ws) => echo(ws, 'fragmented binary', fragmentedBinary, true)],
    ['ping/pong', checkPing],
    ['close', checkClose],
  ];
  if (args.profile === 'echo-class') checks = echoClassChecks();

  console.log(`ws ${wsVersion} (node ${process.version}) -> ${url} (${args.profile})`);
  const ws = new WebSocket(url, clientOptions(args));
  ws.on('error', (err) => console.log(`     (ws error event: ${err.message})`));
  let status;
  let tls = '';
  ws.once('upgrade', (res) => {
    status = res.statusCode;
    if (res.socket.encrypted) tls = `, ${res.socket.getProtocol()}, ALPN ${res.socket.alpnProtocol}`;
  });
  try {
    await waitFor(ws, 'open', 'the opening handshake');
    ok('connect', `HTTP ${status}${tls}`);
  } catch (err) {
    fail('connect', err.message);
    return;
  }

  for (const [name, check] of checks) {
    try {
      await check(ws);
    } catch (err) {
      fail(name, err.message);
      if (ws.readyState !== WebSocket.OPEN) {
        fail('remaining checks', `skipped: connection is no longer open (readyState ${ws.readyState})`);
        break;
      }
    }
  }
  if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
}

main()
  .catch((err) => fail('node client', err.stack || String(err)))
  .finally(() => {
    clearTimeout(overall);
    console.log(`node client: ${failures === 0 ? 'all checks passed' : `${failures} check(s) failed`}`);
    process.exit(failures === 0 ? 0 : 1);
  });
