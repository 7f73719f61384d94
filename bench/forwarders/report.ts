// What the in-process benchmark programs (js-port-sink.ts, hypervisor-guest.ts) print: "ready"
// once wired, "frames <count> <monotonic ns>" every 200 ms, and on SIGTERM or SIGINT one JSON
// line on stderr (what finish() returns: counts and the engine's counters) before exiting.
export function reportFrames(count: () => number, finish: () => object | Promise<object>): void {
  const timer = setInterval(() => console.log(`frames ${count()} ${process.hrtime.bigint()}`), 200);
  const onSignal = (): void => {
    clearInterval(timer);
    void Promise.resolve(finish()).then((report) => {
      console.error(JSON.stringify(report));
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  console.log('ready');
}
