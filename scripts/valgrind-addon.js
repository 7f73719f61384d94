// A short workload for the addon under valgrind (scripts/valgrind.sh): TAP open/close
// (multiqueue, vnet header, offloads, queue detach, adoption), IoThread start/stop with
// cross-thread hops, a libuv-driven MainLoopContext with BHs, timers and fd handlers, vnet
// header codec + checksum + TSO/USO segmentation (and rejected frames), objects dropped
// for GC, a worker that exits with everything open, and objects left open at exit (closed
// by the env cleanup). Plain JavaScript (no tsx) to keep valgrind's start-up short.
//   node --expose-gc scripts/valgrind-addon.js [iterations]
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const { Worker } = require('node:worker_threads');

const root = path.join(__dirname, '..');
const addonPath = require('node-gyp-build').path(root);
const b = require(addonPath);
const iterations = Number(process.argv[2] || 20);

function canOpenTaps() {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!m || (BigInt('0x' + m[1]) & (1n << 12n)) === 0n) return false; // CAP_NET_ADMIN
  try {
    fs.accessSync('/dev/net/tun', fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

// ---- frames: an Ethernet + IPv4/IPv6 + TCP/UDP frame with a payload, checksums left open
function ipv4Frame(proto, l4Len) {
  const f = Buffer.alloc(14 + 20 + l4Len);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + l4Len, 16);
  f[22] = 64;
  f[23] = proto;
  f.writeUInt32BE(0x0a000001, 26);
  f.writeUInt32BE(0x0a000002, 30);
  return f;
}
function ipv6Frame(proto, l4Len) {
  const f = Buffer.alloc(14 + 40 + l4Len);
  f.writeUInt16BE(0x86dd, 12);
  f[14] = 0x60;
  f.writeUInt16BE(l4Len, 18);
  f[20] = proto;
  f[21] = 64;
  f[22 + 15] = 1;
  f[38 + 15] = 2;
  return f;
}
function tcp(frame, l4Off, payload) {
  frame.writeUInt16BE(40000, l4Off);
  frame.writeUInt16BE(5201, l4Off + 2);
  frame.writeUInt32BE(1000, l4Off + 4);
  frame[l4Off + 12] = 5 << 4;
  frame[l4Off + 13] = 0x18; // PSH|ACK
  frame.writeUInt16BE(65535, l4Off + 14);
  for (let i = 0; i < payload; i++) frame[l4Off + 20 + i] = i & 0xff;
  return frame;
}
function udp(frame, l4Off, payload) {
  frame.writeUInt16BE(40000, l4Off);
  frame.writeUInt16BE(5201, l4Off + 2);
  frame.writeUInt16BE(8 + payload, l4Off + 4);
  for (let i = 0; i < payload; i++) frame[l4Off + 8 + i] = (i * 7) & 0xff;
  return frame;
}
const C = b.vnetConstants;
function gsoBuf(hdr, frame) {
  return Buffer.concat([b.writeVnetHdr(hdr, 10), frame]);
}

function vnetWork() {
  const tso4 = tcp(ipv4Frame(6, 20 + 20000), 34, 20000);
  const tso6 = tcp(ipv6Frame(6, 20 + 9000), 54, 9000);
  const uso4 = udp(ipv4Frame(17, 8 + 6000), 34, 6000);
  const h4 = {
    flags: C.FLAG_NEEDS_CSUM,
    gsoType: C.GSO_TCPV4,
    hdrLen: 54,
    gsoSize: 1448,
    csumStart: 34,
    csumOffset: 16,
  };
  const h6 = {
    flags: C.FLAG_NEEDS_CSUM,
    gsoType: C.GSO_TCPV6,
    hdrLen: 74,
    gsoSize: 1428,
    csumStart: 54,
    csumOffset: 16,
  };
  const hu = {
    flags: C.FLAG_NEEDS_CSUM,
    gsoType: C.GSO_UDP_L4,
    hdrLen: 42,
    gsoSize: 1400,
    csumStart: 34,
    csumOffset: 6,
  };
  let segments = 0;
  for (const [h, f] of [
    [h4, tso4],
    [h6, tso6],
    [hu, uso4],
  ]) {
    if (b.validateVnetHdr(h, f) !== null) throw new Error('valid header rejected: ' + b.validateVnetHdr(h, f));
    segments += b.segmentFrame(10, gsoBuf(h, f)).length;
    for (const len of [10, 12, 20]) b.parseVnetHdr(b.convertVnetHdr(b.writeVnetHdr(h, 10), len), len);
  }
  // Checksum completion in place, and rejected frames (absurd sizes and offsets).
  const small = udp(ipv4Frame(17, 8 + 100), 34, 100);
  b.completeChecksum({ flags: C.FLAG_NEEDS_CSUM, csumStart: 34, csumOffset: 6 }, small);
  b.internetChecksum(small);
  const bad = [
    { ...h4, gsoSize: 0 },
    { ...h4, hdrLen: 60000 },
    { ...h4, csumStart: 70000 },
    { ...h4, gsoType: 9 },
    { ...hu, gsoSize: 1 },
  ];
  for (const h of bad) {
    try {
      b.segmentFrame(10, gsoBuf(h, tso4));
    } catch {
      /* rejected, as it should be */
    }
  }
  try {
    b.segmentFrame(10, Buffer.alloc(5));
  } catch {
    /* too short */
  }
  return segments;
}

function tapWork(i) {
  const tap = b.tapOpen({ ifname: `npvg${process.pid % 1000}q${i % 4}`, queues: 4, vnetHdr: 'on' });
  tap.setVnetHdrLen(12);
  tap.setOffloads({ csum: true, tso4: true, tso6: true, ecn: true, ufo: true, uso4: true, uso6: true });
  tap.setQueueEnabled(3, false);
  tap.setQueueEnabled(3, true);
  tap.setSndbuf(1 << 20);
  // Adopt a pre-opened fd (dup'ed by the binding), then close both views.
  const adopted = b.tapAdopt([tap.fd(0)]);
  adopted.close();
  try {
    tap.setVnetHdrLen(11);
  } catch {
    /* bad input */
  }
  tap.close();
  try {
    b.tapOpen({ ifname: 'np/bad name' });
  } catch {
    /* bad input */
  }
}

function ioThreadWork(i) {
  const threads = [0, 1].map((k) => new b.IoThread(`np-vg-${k}`, { pollMaxNs: k * 20000 }));
  for (let n = 0; n < 20; n++) threads[n % 2].setPollParams({ pollMaxNs: 1000 + n + i });
  threads[0].stop();
  threads[0].stop(); // idempotent
  return threads[1]; // the caller drops it: stopped by GC
}

function loopWork() {
  return new Promise((resolve) => {
    const ctx = new b.MainLoopContext('vg');
    const [rd, wr] = b.aioPipe();
    let bhRuns = 0;
    let reads = 0;
    ctx.setFdHandler(rd, () => {
      const n = fs.readSync(rd, Buffer.alloc(64));
      reads += n;
      if (reads >= 3) {
        ctx.removeFdHandler(rd); // removal from inside its own callback
      }
    });
    const bh = ctx.bhNew(() => {
      bhRuns++;
      if (bhRuns < 20) ctx.bhSchedule(bh);
      else ctx.bhDelete(bh);
    });
    ctx.bhSchedule(bh);
    const t = ctx.timerNew(() => {
      fs.writeSync(wr, 'abc');
      ctx.timerFree(t); // free from its own callback
      ctx.oneshot(() => {
        const done = ctx.timerNew(() => {
          if (bhRuns < 20 || reads < 3) return ctx.timerMod(done, 1); // valgrind is slow
          ctx.close();
          fs.closeSync(rd);
          fs.closeSync(wr);
          resolve(bhRuns);
        });
        ctx.timerMod(done, 2);
      });
    });
    ctx.timerMod(t, 1);
    // A context left with everything registered is dropped (GC) in the caller.
    const dropped = new b.MainLoopContext('vg-dropped');
    dropped.bhNew(() => {});
    dropped.timerNew(() => {});
  });
}

function workerExitsWithEverythingOpen(taps) {
  const code = `
    const b = require(${JSON.stringify(addonPath)});
    const keep = [new b.IoThread('np-vg-w')];
    ${taps ? 'keep.push(b.tapOpen({ queues: 2 }));' : ''}
    const ctx = new b.MainLoopContext('w');
    const bh = ctx.bhNew(() => process.exit(0));
    ctx.bhSchedule(bh);`;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true });
    w.on('error', reject);
    w.on('exit', resolve);
  });
}

async function main() {
  const taps = canOpenTaps();
  if (!taps) {
    if (process.env.CI === 'true') throw new Error('TAP part cannot run under CI=true: needs root and /dev/net/tun');
    console.log('valgrind-addon: no CAP_NET_ADMIN or /dev/net/tun: TAP part skipped');
  }
  let segments = 0;
  let bhRuns = 0;
  for (let i = 0; i < iterations; i++) {
    segments += vnetWork();
    if (taps) tapWork(i);
    ioThreadWork(i);
    bhRuns += await loopWork();
    if (i % 5 === 0) global.gc?.();
  }
  await workerExitsWithEverythingOpen(taps);
  global.gc?.();
  await new Promise((r) => setTimeout(r, 50));
  // Left open on purpose: the env cleanup at exit must close and free them.
  global.leftOpen = [new b.IoThread('np-vg-left'), taps ? b.tapOpen({ queues: 2 }) : null];
  console.log(
    `valgrind-addon: ${iterations} iterations, ${segments} segments, ${bhRuns} BH runs, taps ${taps ? 'on' : 'skipped'}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
