#!/usr/bin/env node
// Interop check: the Node 'ws' client (pinned in package.json / package-lock.json) against our
// echo servers. Usage: node node_client.js --url ws://127.0.0.1:PORT/ [--profile echo-class]
//   [--ca CA.pem] [--expect-refused] [--no-deflate]
//
// --profile full (default): autobahn-server's echo, every check below (1 MiB, fragments, a Close
//   with code 4001 and a reason echoed back).
// --profile echo-class: the demo's echo class (MyApp.MyWebSocketServer), which reads at most
//   32656 bytes at a time: text, binary, 20000-byte messages (over one TLS record), fragments,
//   ping/pong and a Close whose code comes back.
// Both profiles offer permessage-deflate (ws's default) and check the 101 agreed to it, then echo
//   100 KB compressible messages (JSON text and binary) through it, and check the server's
//   replies came compressed (the socket read under a quarter of their size). --no-deflate: offer
//   nothing, and check the 101 carries no Sec-WebSocket-Extensions (the same messages go plain).
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
    deflate: !argv.includes('--no-deflate'),
  };
  if (!args.url || !['full', 'echo-class'].includes(args.profile)) {
    console.error('usage: node node_client.js --url ws://127.0.0.1:PORT/ [--profile full|echo-class] [--ca CA.pem] [--expect-refused] [--no-deflate]');
    process.exit(2);
  }
  return args;
}

// Options for the 'ws' client: with --ca, Node's TLS trusts only that CA (verification stays on).
function clientOptions(args) {
  const options = { handshakeTimeout: STEP_TIMEOUT_MS, maxPayload: 4 * MIB, perMessageDeflate: args.deflate };
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

// About `size` bytes of JSON text that deflate packs well: one chat line repeated.
function compressibleJson(size) {
  const line = '{"type":"message","room":"default","user":"alice","text":"hello, hello, world"}';
  return `[${Array(Math.floor(size / (line.length + 1))).fill(line).join(',')}]`;
}

// Sends `message` and checks the echo: the echo class reads at most 32656 bytes at a time, so
// it may come back in several messages of the same type, which must join into `message`. With
// `compressed`, the socket must have read under a quarter of the message's size meanwhile.
async function echoGathered(ws, socket, name, message, isBinary, compressed) {
  const expected = Buffer.from(message);
  const read0 = socket.bytesRead;
  const parts = [];
  let size = 0;
  // One listener for every part (a part may follow another within the same tick).
  const gathered = new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`timed out after ${STEP_TIMEOUT_MS / 1000} s waiting for the echo of ${name} (${size} of ${expected.length} bytes)`)), STEP_TIMEOUT_MS);
    const onMessage = (data, gotBinary) => {
      if (gotBinary !== isBinary) {
        done(new Error(`got back a ${gotBinary ? 'binary' : 'text'} message (wrong message type)`));
        return;
      }
      parts.push(Buffer.from(data));
      size += data.length;
      if (size >= expected.length) done();
    };
    const onClose = (code) => done(new Error(`connection closed during the echo of ${name}: code=${code}`));
    function done(err) {
      clearTimeout(timer);
      ws.off('message', onMessage);
      ws.off('close', onClose);
      if (err) reject(err);
      else resolve();
    }
    ws.on('message', onMessage);
    ws.on('close', onClose);
  });
  ws.send(message, { binary: isBinary });
  await gathered;
  const got = Buffer.concat(parts);
  const read = socket.bytesRead - read0;
  if (!got.equals(expected)) {
    fail(name, `sent ${describe(expected, isBinary)}, got back ${describe(got, isBinary)}; first difference at byte ${firstDifference(got, expected)}`);
  } else if (compressed && read * 4 > expected.length) {
    fail(name, `echoed intact, but the socket read ${read} bytes for ${expected.length}: the server did not compress`);
  } else {
    ok(name, `${describe(expected, isBinary)}, back in ${parts.length} message(s), ${read} bytes read`);
  }
}

// The 101's Sec-WebSocket-Extensions: permessage-deflate agreed if offered, else none.
function checkExtensions(deflate, responseHeader) {
  return async (ws) => {
    const header = responseHeader();
    if (deflate && !(header || '').startsWith('permessage-deflate')) {
      fail('permessage-deflate agreed', `offered it; 101 Sec-WebSocket-Extensions=${JSON.stringify(header)}, ws.extensions=${JSON.stringify(ws.extensions)}`);
    } else if (deflate && !ws.extensions.startsWith('permessage-deflate')) {
      fail('permessage-deflate agreed', `the 101 agreed (${header}), but ws.extensions=${JSON.stringify(ws.extensions)}`);
    } else if (!deflate && (header !== undefined || ws.extensions !== '')) {
      fail('no extension', `offered none; 101 Sec-WebSocket-Extensions=${JSON.stringify(header)}, ws.extensions=${JSON.stringify(ws.extensions)}`);
    } else {
      ok(deflate ? 'permessage-deflate agreed' : 'no extension', `ws.extensions=${JSON.stringify(ws.extensions)}`);
    }
  };
}

// The extension header, then 100 KB messages deflate packs well, through it (or plain).
function deflateChecks(deflate, responseHeader, socket) {
  const how = deflate ? 'compressed' : 'plain';
  const bigJson = compressibleJson(100_000);
  const bigBinary = Buffer.alloc(102_400).map((_, i) => i & 0xff);
  return [
    ['extensions', checkExtensions(deflate, responseHeader)],
    [`${how} text`, (ws) => echo(ws, `${how} text`, ['héllo wörld €'], false)],
    [`${how} binary`, (ws) => echo(ws, `${how} binary`, [Buffer.from([...Array(256).keys()])], true)],
    [`${how} JSON 100 KB`, (ws) => echoGathered(ws, socket(), `${how} JSON 100 KB`, bigJson, false, deflate)],
    [`${how} binary 100 KB`, (ws) => echoGathered(ws, socket(), `${how} binary 100 KB`, bigBinary, true, deflate)],
  ];
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

  const offer = args.deflate ? 'offering permessage-deflate' : 'offering no extension';
  console.log(`ws ${wsVersion} (node ${process.version}) -> ${url} (${args.profile}, ${offer})`);
  const ws = new WebSocket(url, clientOptions(args));
  ws.on('error', (err) => console.log(`     (ws error event: ${err.message})`));
  let status;
  let tls = '';
  let extensionsHeader;
  let socket;
  // Before the Close at the end.
  checks = deflateChecks(args.deflate, () => extensionsHeader, () => socket).concat(checks);
  ws.once('upgrade', (res) => {
    status = res.statusCode;
    extensionsHeader = res.headers['sec-websocket-extensions'];
    socket = res.socket;
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
