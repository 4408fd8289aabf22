// The Node `ws` server that benches/compare.sh sets against ours in the deflate scenarios:
// `node peer-ws.js --addr HOST:PORT --mode echo|broadcast` (port 0: any free port; any path),
// prints `listening on ADDR` once bound.
//
// echo: every message goes back to its socket as it came (text or binary).
// broadcast: what the demo's Bench.Broadcast class does (examples/src/broadcast.rs): every
// socket is in one room, and every message a socket sends goes to every open socket, the
// sender's included, with its kind kept.
//
// permessage-deflate is on with ws's documented defaults (context takeover both ways unless
// the client asks otherwise, 15-bit windows, zlib's default level, at most 10 zlib jobs at
// once), except `threshold`: ws's default of 1024 bytes would send the ~300-byte chat lines
// of the benchmark uncompressed; 64 is the minimum our servers compress
// (ws_proto::DeflateConfig::min_size).
'use strict';

const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const args = { addr: '127.0.0.1:9005', mode: 'echo' };
  for (let i = 0; i < argv.length; i += 1) {
    const [name, inline] = argv[i].split('=', 2);
    const value = () => (inline !== undefined ? inline : argv[(i += 1)]);
    if (name === '--addr') args.addr = value();
    else if (name === '--mode') args.mode = value();
    else if (name === '--help' || name === '-h') {
      console.log('usage: node peer-ws.js [--addr HOST:PORT] [--mode echo|broadcast]');
      process.exit(0);
    } else {
      console.error(`peer-ws.js: unknown argument ${argv[i]}`);
      process.exit(2);
    }
  }
  if (!['echo', 'broadcast'].includes(args.mode)) {
    console.error(`peer-ws.js: --mode echo or broadcast, not ${args.mode}`);
    process.exit(2);
  }
  const at = args.addr.lastIndexOf(':');
  const host = args.addr.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(args.addr.slice(at + 1));
  if (at < 0 || !Number.isInteger(port)) {
    console.error(`peer-ws.js: --addr HOST:PORT, not ${args.addr}`);
    process.exit(2);
  }
  return { ...args, host, port };
}

const args = parseArgs(process.argv.slice(2));
const wss = new WebSocketServer({
  host: args.host,
  port: args.port,
  perMessageDeflate: { threshold: 64 },
});

wss.on('connection', (ws) => {
  ws.on('error', () => ws.terminate());
  if (args.mode === 'echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else {
    ws.on('message', (data, isBinary) => {
      for (const client of wss.clients) {
        if (client.readyState === client.OPEN) client.send(data, { binary: isBinary });
      }
    });
  }
});

wss.on('listening', () => {
  const { address, port } = wss.address();
  const host = address.includes(':') ? `[${address}]` : address;
  console.log(`listening on ${host}:${port}`);
});

wss.on('error', (e) => {
  console.error(`peer-ws.js: ${e.message}`);
  process.exit(1);
});

// compare.sh stops its servers with SIGTERM.
process.on('SIGTERM', () => process.exit(0));
