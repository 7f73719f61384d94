// Wait for a promise, at most `ms`. The timer also keeps the process alive meanwhile: the
// engine's wake-ups (frames arrived, ring room) do not, so that an idle data plane never
// holds a program open; a program whose only pending work is a port needs its own handle.
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
