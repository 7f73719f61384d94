// Bounded polling for the tests: wait until fn() gives a truthy value (returned), checking
// every 5 ms, or fail naming what never happened.
export async function waitFor<T>(fn: () => T | undefined | false, what: string, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
