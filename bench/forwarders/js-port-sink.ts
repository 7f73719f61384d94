// The JavaScript consumer for `npm run bench -- js-port`: TAP IFNAME (opened by name, no
// vnet header) peered with a netplane packet port; every frame the engine delivers is
// taken in JavaScript (batches through the shared-memory ring) and counted, frames and
// bytes. Prints "ready" once wired, then "frames <count> <monotonic ns>" every 200 ms.
//
//   node --import tsx bench/forwarders/js-port-sink.ts IFNAME
import { NativeDataPlane } from '../../lib/dataplane/native-dataplane';
import { Tap } from '../../lib/tap';
import { reportFrames } from './report';

function main(): void {
  const ifname = process.argv[2];
  if (!ifname || process.argv.length !== 3) throw new Error('usage: js-port-sink.ts IFNAME');
  const tap = Tap.open({ ifname, vnetHdr: 'off' });
  const dp = new NativeDataPlane();
  const kTapHandle = 1;
  dp.addClient({ handle: kTapHandle, kind: 'tap', name: ifname, queueIndex: 0, fd: tap.fd(0), vnetHdrLen: 0 });
  const port = dp.createPort('bench-sink');
  dp.connect(kTapHandle, port.handle);

  let frames = 0;
  let bytes = 0;
  port.onFrames((batch) => {
    frames += batch.length;
    for (const f of batch) bytes += f.byteLength;
  });
  reportFrames(
    () => frames,
    () => {
      const stats = dp.stats();
      dp.close();
      void tap.close();
      return { frames, bytes, stats };
    },
  );
}

try {
  main();
} catch (e) {
  console.error(`js-port-sink: ${(e as Error).message}`);
  process.exit(2);
}
