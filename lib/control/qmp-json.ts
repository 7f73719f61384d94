// The JSON dialect QMP speaks, read as a byte stream.
//
// QEMU does not frame QMP messages by lines: it lexes the stream into tokens and counts
// braces and brackets; a message ends when they balance again. Its dialect adds
// single-quoted strings to JSON and reports errors with fixed texts ("JSON parse error,
// ..."). This reader does the same, with two safety limits (message size and nesting
// depth). After any error it discards tokens until the nesting balances, so one bad message
// costs one error reply and the next message is read normally.

export interface JsonStreamLimits {
  /** Bytes of tokens one message may hold (QEMU: 64 MiB; we default to 1 MiB). */
  maxMessageBytes: number;
  /** Open braces + brackets one message may nest (QEMU: 1024). */
  maxNesting: number;
  /** Tokens one message may hold (QEMU: 2M; bounds the memory a message can pin). */
  maxTokens: number;
}

export const defaultJsonLimits: JsonStreamLimits = { maxMessageBytes: 1 << 20, maxNesting: 1024, maxTokens: 1 << 16 };

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

type TokenKind = '{' | '}' | '[' | ']' | ':' | ',' | 'string' | 'number' | 'keyword';

interface Token {
  kind: TokenKind;
  /** Raw text for keywords and numbers; decoded value for strings. */
  text: string;
  /** For strings that failed to decode: the parse error to report. */
  bad?: string;
}

class ParseError extends Error {}

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
  return (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x2b || byte === 0x2e || byte === 0x65 || byte === 0x45;
}

const numberPattern = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Incremental reader: feed() it bytes as they arrive; it calls onValue for every complete
 * top-level value and onError with QEMU's text for every malformed or oversized message.
 */
export class QmpJsonReader {
  private readonly limits: JsonStreamLimits;
  private state = LexState.Start;
  private lexeme: number[] = [];
  private quote = 0;
  private tokens: Token[] = [];
  private depth = 0;
  private size = 0;
  /** After an error: drop tokens until the nesting balances. */
  private discarding = false;

  constructor(
    private readonly onValue: (value: JsonValue) => void,
    private readonly onError: (message: string) => void,
    limits: Partial<JsonStreamLimits> = {},
  ) {
    this.limits = { ...defaultJsonLimits, ...limits };
  }

  feed(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) this.consume(chunk[i]!);
  }

  /** Bytes of the message being read so far (for tests and diagnostics). */
  get pendingBytes(): number {
    return this.size;
  }

  private consume(byte: number): void {
    switch (this.state) {
      case LexState.String:
      case LexState.StringEscape:
        this.stringByte(byte);
        return;
      case LexState.Number:
        if (isNumberByte(byte)) {
          this.keep(byte);
          return;
        }
        this.endNumber();
        this.consume(byte); // the byte after the number starts the next token
        return;
      case LexState.Keyword:
        if (isLetter(byte)) {
          this.keep(byte);
          return;
        }
        this.endWord();
        this.consume(byte);
        return;
      case LexState.Recovery:
        // Like QEMU's lexer: after a stray byte, skip to a structural byte or a control
        // character so that a run of garbage costs one error.
        if (!isStructural(byte) && (byte >= 0x20 || byte === 0x09)) return;
        this.state = LexState.Start;
        break;
      case LexState.Start:
        break;
    }
    this.startByte(byte);
  }

  private startByte(byte: number): void {
    if (isWhitespace(byte)) return;
    if (isStructural(byte)) {
      this.size += 1;
      this.token({ kind: String.fromCharCode(byte) as TokenKind, text: '' });
      return;
    }
    if (byte === 0x22 || byte === 0x27) {
      this.state = LexState.String;
      this.quote = byte;
      this.lexeme = [];
      this.size += 1;
      return;
    }
    if ((byte >= 0x30 && byte <= 0x39) || byte === 0x2d) {
      this.state = LexState.Number;
      this.lexeme = [byte];
      this.size += 1;
      return;
    }
    if (isLetter(byte)) {
      this.state = LexState.Keyword;
      this.lexeme = [byte];
      this.size += 1;
      return;
    }
    this.stray([byte]);
  }

  /** Keep a byte of the current lexeme unless the message is already being dropped. */
  private keep(byte: number): void {
    this.size += 1;
    if (!this.discarding) this.lexeme.push(byte);
    if (this.size > this.limits.maxMessageBytes && !this.discarding) this.limitExceeded('JSON token size limit exceeded');
  }

  private stringByte(byte: number): void {
    if (byte < 0x20) {
      // A raw control character inside a string is a lexical error in QEMU's dialect.
      const bytes = [this.quote, ...this.lexeme, byte];
      this.lexeme = [];
      this.stray(bytes);
      return;
    }
    if (this.state === LexState.StringEscape) {
      this.state = LexState.String;
      this.keep(byte);
      return;
    }
    if (byte === 0x5c) {
      this.state = LexState.StringEscape;
      this.keep(byte);
      return;
    }
    if (byte === this.quote) {
      this.size += 1;
      this.state = LexState.Start;
      const raw = this.lexeme;
      this.lexeme = [];
      this.token(this.discarding ? { kind: 'string', text: '' } : decodeString(raw, this.quote));
      return;
    }
    this.keep(byte);
  }

  private endNumber(): void {
    const text = Buffer.from(this.lexeme).toString('latin1');
    this.lexeme = [];
    this.state = LexState.Start;
    if (!this.discarding && !numberPattern.test(text)) {
      this.stray(Array.from(Buffer.from(text, 'latin1')));
      return;
    }
    this.token({ kind: 'number', text });
  }

  private endWord(): void {
    const text = Buffer.from(this.lexeme).toString('latin1');
    this.lexeme = [];
    this.state = LexState.Start;
    this.token({ kind: 'keyword', text });
  }

  /** A byte sequence that is no token: report it, drop the message, resynchronize. */
  private stray(bytes: number[]): void {
    this.state = LexState.Recovery;
    if (this.discarding) {
      this.finishIfBalanced();
      return;
    }
    const shown = Buffer.from(bytes.filter((b) => b !== 0)).toString('utf8');
    this.fail(`JSON parse error, stray '${shown}'`);
    this.finishIfBalanced();
  }

  private limitExceeded(message: string): void {
    this.fail(message);
  }

  private fail(message: string): void {
    this.tokens = [];
    this.discarding = true;
    this.onError(message);
  }

  private token(token: Token): void {
    switch (token.kind) {
      case '{':
      case '[':
        this.depth += 1;
        break;
      case '}':
      case ']':
        this.depth -= 1;
        break;
      default:
        break;
    }
    if (!this.discarding) {
      this.tokens.push(token);
      if (this.depth > this.limits.maxNesting) this.limitExceeded('JSON nesting depth limit exceeded');
      else if (this.size > this.limits.maxMessageBytes) this.limitExceeded('JSON token size limit exceeded');
      else if (this.tokens.length > this.limits.maxTokens) this.limitExceeded('JSON token count limit exceeded');
    }
    this.finishIfBalanced();
  }

  private finishIfBalanced(): void {
    if (this.depth > 0) return;
    const tokens = this.tokens;
    const wasDiscarding = this.discarding;
    this.tokens = [];
    this.depth = 0;
    this.size = 0;
    this.discarding = false;
    if (wasDiscarding || tokens.length === 0) return;
    let value: JsonValue;
    try {
      value = parseTokens(tokens);
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      this.onError(`JSON parse error, ${e.message}`);
      return;
    }
    this.onValue(value);
  }
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  return -1;
}

/** Decode a string lexeme (bytes between the quotes) with JSON escapes plus \'. */
function decodeString(raw: number[], quote: number): Token {
  let text: string;
  try {
    text = utf8.decode(Uint8Array.from(raw));
  } catch {
    return { kind: 'string', text: '', bad: 'invalid UTF-8 sequence in string' };
  }
  if (!text.includes('\\')) return { kind: 'string', text };
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = text[++i];
    switch (e) {
      case '"': out += '"'; break;
      case "'": out += "'"; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        let code = 0;
        for (let k = 1; k <= 4; k++) {
          const h = hexValue(text.charCodeAt(i + k));
          if (h < 0) {
            const rest = text.slice(i - 1) + String.fromCharCode(quote);
            return { kind: 'string', text: '', bad: `${rest} is not a valid Unicode character` };
          }
          code = code * 16 + h;
        }
        i += 4;
        out += String.fromCharCode(code);
        break;
      }
      default:
        return { kind: 'string', text: '', bad: 'invalid escape sequence in string' };
    }
  }
  return { kind: 'string', text: out };
}

/** Recursive descent over one message's tokens, with QEMU's error texts. */
function parseTokens(tokens: Token[]): JsonValue {
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const next = (): Token => {
    const t = tokens[pos++];
    if (t === undefined) throw new ParseError('premature end of input');
    return t;
  };

  const value = (): JsonValue => {
    const t = peek();
    if (t === undefined) throw new ParseError('premature end of input');
    switch (t.kind) {
      case '{':
        return object();
      case '[':
        return array();
      case 'string':
        pos++;
        if (t.bad !== undefined) throw new ParseError(t.bad);
        return t.text;
      case 'number':
        pos++;
        return Number(t.text);
      case 'keyword':
        pos++;
        if (t.text === 'true') return true;
        if (t.text === 'false') return false;
        if (t.text === 'null') return null;
        throw new ParseError(`invalid keyword '${t.text}'`);
      default:
        throw new ParseError('expecting value');
    }
  };

  const object = (): JsonValue => {
    next(); // '{'
    const dict: { [key: string]: JsonValue } = Object.create(null);
    const seen = new Set<string>();
    if (peek()?.kind === '}') {
      pos++;
      return { ...dict };
    }
    for (;;) {
      const keyToken = peek();
      if (keyToken === undefined) throw new ParseError('premature end of input');
      if (keyToken.kind !== 'string') {
        // QEMU parses the key as a value first, so a malformed key reports its own error.
        value();
        throw new ParseError('key is not a string in object');
      }
      pos++;
      if (keyToken.bad !== undefined) throw new ParseError(keyToken.bad);
      if (next().kind !== ':') throw new ParseError('missing : in object pair');
      const v = value();
      if (seen.has(keyToken.text)) throw new ParseError('duplicate key');
      seen.add(keyToken.text);
      dict[keyToken.text] = v;
      const sep = next();
      if (sep.kind === '}') break;
      if (sep.kind !== ',') throw new ParseError('expected separator in dict');
    }
    // A plain object (not null-prototype) so callers can use ordinary object operations;
    // "__proto__" keys are defined as own properties, never as the prototype.
    const plain: { [key: string]: JsonValue } = {};
    for (const k of Object.keys(dict)) Object.defineProperty(plain, k, { value: dict[k], enumerable: true, writable: true, configurable: true });
    return plain;
  };

  const array = (): JsonValue => {
    next(); // '['
    const list: JsonValue[] = [];
    if (peek()?.kind === ']') {
      pos++;
      return list;
    }
    for (;;) {
      list.push(value());
      const sep = next();
      if (sep.kind === ']') break;
      if (sep.kind !== ',') throw new ParseError('expected separator in list');
    }
    return list;
  };

  const result = value();
  if (pos < tokens.length) throw new ParseError('expecting value');
  return result;
}

/** Parse one complete QMP-dialect JSON text; throws Error with QEMU's message. */
export function parseQmpJson(text: string, limits: Partial<JsonStreamLimits> = {}): JsonValue {
  const values: JsonValue[] = [];
  const errors: string[] = [];
  const reader = new QmpJsonReader((v) => values.push(v), (m) => errors.push(m), limits);
  reader.feed(Buffer.from(text + '\n', 'utf8'));
  if (errors.length > 0) throw new Error(errors[0]);
  if (values.length !== 1) throw new Error(values.length === 0 ? 'JSON parse error, premature end of input' : 'JSON parse error, expecting value');
  return values[0]!;
}

function escapeString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    switch (code) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += '\\\\'; break;
      case 0x08: out += '\\b'; break;
      case 0x0c: out += '\\f'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x09: out += '\\t'; break;
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
