// A small QMP client for tests: raw bytes in, parsed messages out, events kept apart.
// Works against netplane and against QEMU alike.
import * as net from 'node:net';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read replies field by field
export type QmpMessage = Record<string, any>;

export class QmpTestClient {
  readonly messages: QmpMessage[] = [];
  readonly events: QmpMessage[] = [];
  /** Every non-event line as received (for checks JSON.parse would blur, like big integers). */
  readonly rawLines: string[] = [];
  private buffer = '';
  private waiters: Array<() => void> = [];
  closed = false;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl).replace(/\r$/, '');
        this.buffer = this.buffer.slice(nl + 1);
        if (line.trim() === '') continue;
        const msg = JSON.parse(line) as QmpMessage;
        if ('event' in msg) this.events.push(msg);
        else {
          this.messages.push(msg);
          this.rawLines.push(line);
        }
      }
      this.wake();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /**
   * Connect, retrying while the socket refuses: a server's socket file appears at bind(),
   * a moment before its listen() (QEMU does the two apart), so an early connect is refused.
   */
  static async connect(path: string, timeoutMs = 5000): Promise<QmpTestClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await QmpTestClient.connectOnce(path, Math.max(1, deadline - Date.now()));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() >= deadline) throw e;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  private static connectOnce(path: string, timeoutMs: number): Promise<QmpTestClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`QMP connect to ${path} timed out`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(new QmpTestClient(s));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  /** Connect, read the greeting, negotiate capabilities. */
  static async open(path: string): Promise<{ client: QmpTestClient; greeting: QmpMessage }> {
    const client = await QmpTestClient.connect(path);
    const greeting = await client.next();
    const r = await client.execute('qmp_capabilities');
    if (!('return' in r)) throw new Error(`qmp_capabilities failed: ${JSON.stringify(r)}`);
    return { client, greeting };
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async waitFor<T>(take: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = take();
      if (v !== undefined) return v;
      if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The next non-event message. */
  next(timeoutMs = 5000): Promise<QmpMessage> {
    return this.waitFor(() => this.messages.shift(), timeoutMs, 'a QMP message');
  }

  /** The next event named `name` (events seen earlier included). */
  nextEvent(name: string, timeoutMs = 5000): Promise<QmpMessage> {
    return this.waitFor(
      () => {
        const i = this.events.findIndex((e) => e.event === name);
        return i < 0 ? undefined : this.events.splice(i, 1)[0];
      },
      timeoutMs,
      `event ${name}`,
    );
  }

  /** Resolves when the server closed the connection. */
  waitClosed(timeoutMs = 5000): Promise<true> {
    return this.waitFor(() => (this.closed ? true : undefined), timeoutMs, 'the connection to close');
  }

  sendRaw(data: string | Buffer): void {
    this.socket.write(data);
  }

  async execute(command: string, args?: Record<string, unknown>, id?: unknown): Promise<QmpMessage> {
    const req: Record<string, unknown> = { execute: command };
    if (args !== undefined) req.arguments = args;
    if (id !== undefined) req.id = id;
    this.sendRaw(JSON.stringify(req) + '\n');
    return this.next();
  }

  /** human-monitor-command, returning its text. */
  async hmp(commandLine: string): Promise<string> {
    const r = await this.execute('human-monitor-command', { 'command-line': commandLine });
    if (!('return' in r)) throw new Error(`human-monitor-command failed: ${JSON.stringify(r)}`);
    return r.return as string;
  }

  close(): void {
    this.socket.destroy();
  }
}
