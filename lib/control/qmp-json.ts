// The JSON dialect QMP speaks, read as a byte stream.
//
// QEMU does not frame QMP messages by lines: it lexes the stream and counts braces and
// brackets; a message ends when they balance again. This reader does that framing (with
// limits on message size, token count and nesting), then hands each complete message to the
// option parser's QEMU-dialect JSON parser (single-quoted strings, exact integers, QEMU's
// "JSON parse error, ..." texts). After an error it discards input until the nesting
// balances, so one bad message costs one error reply and the next message is read normally.
import { JsonFloat, parseQemuJson, type JsonValue } from '../options/json';

export type { JsonValue };
export { JsonFloat };

export interface JsonStreamLimits {
  /** Bytes one message may hold (QEMU: 64 MiB of tokens; we default to 1 MiB). */
  maxMessageBytes: number;
  /** Open braces + brackets one message may nest (QEMU: 1024). */
  maxNesting: number;
  /** Tokens one message may hold (QEMU: 2M; bounds the work a message can cause). */
  maxTokens: number;
}

export const defaultJsonLimits: JsonStreamLimits = { maxMessageBytes: 1 << 20, maxNesting: 1024, maxTokens: 1 << 16 };

const enum LexState {
  Start,
  String,
  StringEscape,
  Number,
  Keyword,
  Recovery,
}

function isStructural(byte: number): boolean {
  return byte === 0x7b || byte === 0x7d || byte === 0x5b || byte === 0x5d || byte === 0x3a || byte === 0x2c;
}

function isWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

function isLetter(byte: number): boolean {
  return (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x41 && byte <= 0x5a);
}

function isNumberByte(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x2b || byte === 0x2e || byte === 0x65 || byte === 0x45
  );
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Incremental reader: feed() it bytes as they arrive; it calls onValue for every complete
 * top-level value and onError with QEMU's text for every malformed or oversized message.
 */
export class QmpJsonReader {
  private readonly limits: JsonStreamLimits;
  private state = LexState.Start;
  private quote = 0;
  private depth = 0;
  private tokens = 0;
  private size = 0;
  /** Inside a message (its first byte seen, its end not yet). */
  private inMessage = false;
  /** After an error: drop input until the nesting balances. */
  private discarding = false;
  /** The message's bytes from earlier chunks, and where it starts in the current one. */
  private parts: Buffer[] = [];
  private partStart = 0;
  private chunk: Buffer = Buffer.alloc(0);
  /** Offset in the message where the current string token starts (for error texts). */
  private tokenStart = 0;

  constructor(
    private readonly onValue: (value: JsonValue) => void,
    private readonly onError: (message: string) => void,
    limits: Partial<JsonStreamLimits> = {},
  ) {
    this.limits = { ...defaultJsonLimits, ...limits };
  }

  feed(data: Uint8Array): void {
    this.chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.partStart = 0;
    for (let i = 0; i < this.chunk.length; i++) this.consume(this.chunk[i]!, i);
    if (this.inMessage && !this.discarding && this.partStart < this.chunk.length) {
      this.parts.push(Buffer.from(this.chunk.subarray(this.partStart)));
    }
    this.chunk = Buffer.alloc(0);
  }

  private consume(byte: number, i: number): void {
    if (this.inMessage) {
      this.size += 1;
      if (this.size > this.limits.maxMessageBytes && !this.discarding) this.fail('JSON token size limit exceeded');
    }
    switch (this.state) {
      case LexState.String:
        if (byte < 0x20) return this.stray(i, true);
        if (byte === 0x5c) this.state = LexState.StringEscape;
        else if (byte === this.quote) {
          this.state = LexState.Start;
          this.tokenEnd(i + 1);
        }
        return;
      case LexState.StringEscape:
        if (byte < 0x20) return this.stray(i, true);
        this.state = LexState.String;
        return;
      case LexState.Number:
        if (isNumberByte(byte)) return;
        this.state = LexState.Start;
        this.tokenEnd(i);
        break;
      case LexState.Keyword:
        if (isLetter(byte)) return;
        this.state = LexState.Start;
        this.tokenEnd(i);
        break;
      case LexState.Recovery:
        // Like QEMU's lexer: after a stray byte, skip to a structural byte or a control
        // character, so that a run of garbage costs one error.
        if (!isStructural(byte) && (byte >= 0x20 || byte === 0x09)) return;
        this.state = LexState.Start;
        break;
      case LexState.Start:
        break;
    }
    if (isWhitespace(byte)) return;
    if (!this.inMessage) this.begin(i);
    if (isStructural(byte)) {
      if (byte === 0x7b || byte === 0x5b) this.depth += 1;
      else if (byte === 0x7d || byte === 0x5d) this.depth -= 1;
      if (this.depth > this.limits.maxNesting && !this.discarding) this.fail('JSON nesting depth limit exceeded');
      this.tokenEnd(i + 1);
    } else if (byte === 0x22 || byte === 0x27) {
      this.state = LexState.String;
      this.quote = byte;
      this.tokenStart = this.size - 1;
    } else if ((byte >= 0x30 && byte <= 0x39) || byte === 0x2d) {
      this.state = LexState.Number;
    } else if (isLetter(byte)) {
      this.state = LexState.Keyword;
    } else {
      this.stray(i, false);
    }
  }

  private begin(i: number): void {
    this.inMessage = true;
    this.size = 1;
    this.tokens = 0;
    this.parts = [];
    this.partStart = i;
  }

  /** A token ended just before `end`; the message ends with it when the nesting balances. */
  private tokenEnd(end: number): void {
    this.tokens += 1;
    if (this.tokens > this.limits.maxTokens && !this.discarding) this.fail('JSON token count limit exceeded');
    if (this.depth > 0) return;
    const discarded = this.discarding;
    const parts = this.parts;
    if (!discarded) parts.push(Buffer.from(this.chunk.subarray(this.partStart, end)));
    this.inMessage = false;
    this.discarding = false;
    this.depth = 0;
    this.parts = [];
    this.partStart = end;
    if (discarded) return;
    let text: string;
    try {
      text = utf8.decode(Buffer.concat(parts));
    } catch {
      this.onError('JSON parse error, invalid UTF-8 sequence in string');
      return;
    }
    let value: JsonValue;
    try {
      value = parseQemuJson(text);
    } catch (e) {
      this.onError(e instanceof Error ? e.message : String(e));
      return;
    }
    this.onValue(value);
  }

  /** A byte that belongs to no token: report it once, drop the message, resynchronize. */
  private stray(i: number, inString: boolean): void {
    this.state = LexState.Recovery;
    if (!this.discarding) {
      // QEMU shows the failed token: the byte itself, or a string from its quote on.
      const shown = inString
        ? Buffer.concat([...this.parts, this.chunk.subarray(this.partStart, i + 1)]).subarray(this.tokenStart)
        : this.chunk.subarray(i, i + 1);
      this.fail(`JSON parse error, stray '${shown.toString('utf8').replace(/\0/g, '')}'`);
    }
    if (this.depth <= 0) {
      this.inMessage = false;
      this.discarding = false;
      this.depth = 0;
      this.parts = [];
      this.partStart = i + 1;
    }
  }

  private fail(message: string): void {
    this.discarding = true;
    this.parts = [];
    this.onError(message);
  }
}

/** Parse one complete QMP-dialect JSON text; throws Error with QEMU's message. */
export function parseQmpJson(text: string, limits: Partial<JsonStreamLimits> = {}): JsonValue {
  const values: JsonValue[] = [];
  const errors: string[] = [];
  const reader = new QmpJsonReader(
    (v) => values.push(v),
    (m) => errors.push(m),
    limits,
  );
  reader.feed(Buffer.from(text + '\n', 'utf8'));
  if (errors.length > 0) throw new Error(errors[0]);
  if (values.length !== 1)
    throw new Error(values.length === 0 ? 'JSON parse error, premature EOI' : 'Expecting at most one JSON value');
  return values[0]!;
}

function escapeString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    switch (code) {
      case 0x22:
        out += '\\"';
        break;
      case 0x5c:
        out += '\\\\';
        break;
      case 0x08:
        out += '\\b';
        break;
      case 0x0c:
        out += '\\f';
        break;
      case 0x0a:
        out += '\\n';
        break;
      case 0x0d:
        out += '\\r';
        break;
      case 0x09:
        out += '\\t';
        break;
      default:
        // QEMU writes everything outside printable ASCII as \uXXXX (upper-case hex).
        out += code >= 0x20 && code < 0x7f ? s[i] : '\\u' + code.toString(16).toUpperCase().padStart(4, '0');
    }
  }
  return out + '"';
}

/** Serialize as QEMU does: `{"a": 1, "b": [1, 2]}`, non-ASCII escaped. Key order kept. */
export function toQmpJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      // QEMU would print "inf"/"nan", which no JSON reader accepts; we stay valid JSON.
      return Number.isFinite(value) ? String(value) : 'null';
    case 'bigint':
      return value.toString();
    case 'string':
      return escapeString(value);
    case 'object': {
      if (value instanceof JsonFloat) return toQmpJson(value.value);
      if (Array.isArray(value)) return '[' + value.map(toQmpJson).join(', ') + ']';
      const parts: string[] = [];
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (v === undefined) continue;
        parts.push(`${escapeString(k)}: ${toQmpJson(v)}`);
      }
      return '{' + parts.join(', ') + '}';
    }
    default:
      return 'null';
  }
}
