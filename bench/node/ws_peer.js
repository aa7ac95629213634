// The Node `ws` peer of bench/peers.py: a WebSocket server on 127.0.0.1 that, once it gets
// SIGUSR2, sends the hub's batch message to every client 20 times a second (`client.send`
// for each, as the ws README's broadcast example does).
//     node bench/node/ws_peer.js PORT BODY_FILE
'use strict';
const fs = require('fs');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const body = fs.readFileSync(process.argv[3], 'utf8');
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
let seq = 0;

function nowNs() {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e3)) * 1000n;
}

function start() {
  let nextAt = performance.now();
  const tick = () => {
    seq += 1;
    const text = `{"type": "batch", "seq": ${seq}, "data": ${body.replace('BENCH_STAMP', nowNs().toString())}}`;
    for (const client of wss.clients) client.send(text);
    nextAt += 50;
    setTimeout(tick, Math.max(0, nextAt - performance.now()));
  };
  tick();
}

process.on('SIGUSR2', start);
process.on('SIGTERM', () => process.exit(0));
