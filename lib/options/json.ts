// The JSON dialect QEMU accepts for -netdev/-device/-object '{...}' (and QMP): standard JSON
// plus single-quoted strings. Unlike JSON.parse it keeps what QAPI's type checks need:
// - integers stay exact: a safe integer becomes a number, a larger one within
//   [-2^63, 2^64-1] a bigint; integer literals outside that range are doubles, as in QEMU;
// - a literal with a fraction or exponent is a double (JsonFloat), even "1.0";
// - a duplicate key in an object is an error, as in QEMU.
// Errors use QEMU's wording ("JSON parse error, ..."), thrown as OptionError.

import { OptionError } from './errors';

/** A JSON number written with a fraction or exponent (QEMU: a double, never an integer). */
export class JsonFloat {
  constructor(readonly value: number) {}
}

export type JsonValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | JsonFloat
  | JsonValue[]
  | { [key: string]: JsonValue };

const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;
const MAX_DEPTH = 1024; // QEMU's parser limit on nesting

function parseError(detail: string): OptionError {
  return new OptionError(`JSON parse error, ${detail}`);
}

class Parser {
  private pos = 0;
  constructor(private readonly text: string) {}

  private skipSpace(): void {
    while (this.pos < this.text.length && ' \t\n\r'.includes(this.text[this.pos]!)) this.pos++;
  }

  /** The offending token for "stray" errors: a run of non-separator characters. */
  private stray(): OptionError {
    const m = /^[^\s{}[\]:,"']+/.exec(this.text.slice(this.pos));
    return parseError(`stray '${m ? m[0] : this.text[this.pos]}'`);
  }

  parseDocument(): JsonValue {
    this.skipSpace();
    if (this.pos >= this.text.length) throw parseError('premature EOI');
    const value = this.parseValue(0);
    this.skipSpace();
    if (this.pos < this.text.length) throw new OptionError('Expecting at most one JSON value');
    return value;
  }

  private parseValue(depth: number): JsonValue {
    if (depth > MAX_DEPTH) throw parseError('too many nested data structures');
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === undefined) throw parseError('premature EOI');
    if (c === '{') return this.parseObject(depth);
    if (c === '[') return this.parseArray(depth);
    if (c === '"' || c === "'") return this.parseString();
    if (c === '-' || (c >= '0' && c <= '9')) return this.parseNumber();
    for (const [word, value] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.pos) && !/[A-Za-z0-9_]/.test(this.text[this.pos + word.length] ?? '')) {
        this.pos += word.length;
        return value;
      }
    }
    if (c === '}' || c === ']' || c === ',' || c === ':') throw parseError('expecting value');
    throw this.stray();
  }

  private parseObject(depth: number): { [key: string]: JsonValue } {
    this.pos++; // '{'
    const obj: { [key: string]: JsonValue } = Object.create(null);
    const seen = new Set<string>();
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { ...obj };
    }
    for (;;) {
      this.skipSpace();
      const c = this.text[this.pos];
      if (c === undefined) throw parseError('premature EOI');
      if (c !== '"' && c !== "'") throw parseError(c === '}' || c === ',' ? 'expecting value' : 'key is not a string in object');
      const key = this.parseString();
      this.skipSpace();
      if (this.text[this.pos] === undefined) throw parseError('premature EOI');
      if (this.text[this.pos] !== ':') throw parseError('missing : in object pair');
      this.pos++;
      const value = this.parseValue(depth + 1);
      if (seen.has(key)) throw parseError('duplicate key');
      seen.add(key);
      obj[key] = value;
      this.skipSpace();
      const sep = this.text[this.pos];
      if (sep === undefined) throw parseError('premature EOI');
      this.pos++;
      if (sep === '}') break;
      if (sep !== ',') throw parseError('expected separator in dict');
    }
    // A plain object (with Object.prototype) so callers can use it freely; keys like
    // "__proto__" are defined as own properties, never as the prototype.
    const out: { [key: string]: JsonValue } = {};
    for (const key of Object.keys(obj)) Object.defineProperty(out, key, { value: obj[key], enumerable: true, writable: true, configurable: true });
    return out;
  }

  private parseArray(depth: number): JsonValue[] {
    this.pos++; // '['
    const list: JsonValue[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return list;
    }
    for (;;) {
      list.push(this.parseValue(depth + 1));
      this.skipSpace();
      const sep = this.text[this.pos];
      if (sep === undefined) throw parseError('premature EOI');
      this.pos++;
      if (sep === ']') return list;
      if (sep !== ',') throw parseError('expected separator in list');
    }
  }

  private parseString(): string {
    const quote = this.text[this.pos]!;
    this.pos++;
    let out = '';
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined) throw parseError('premature EOI');
      this.pos++;
      if (c === quote) return out;
      if (c.charCodeAt(0) < 0x20) throw parseError('invalid control character in string');
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.text[this.pos];
      if (e === undefined) throw parseError('premature EOI');
      this.pos++;
      const simple: Record<string, string> = { '"': '"', "'": "'", '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
      if (e in simple) {
        out += simple[e];
      } else if (e === 'u') {
        const hex = this.text.slice(this.pos, this.pos + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw parseError('invalid escape sequence in string');
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 4;
      } else {
        throw parseError('invalid escape sequence in string');
      }
    }
  }

  private parseNumber(): number | bigint | JsonFloat {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.text.slice(this.pos));
    if (!m) throw this.stray();
    const literal = m[0];
    const after = this.text[this.pos + literal.length];
    if (after !== undefined && /[0-9A-Za-z.]/.test(after)) throw this.stray();
    this.pos += literal.length;
    if (m[2] === undefined && m[3] === undefined) {
      const big = BigInt(literal);
      if (big >= INT64_MIN && big <= UINT64_MAX) {
        return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
    }
    return new JsonFloat(Number(literal));
  }
}

/** Parses QEMU-dialect JSON text; throws OptionError with QEMU's wording on bad input. */
export function parseQemuJson(text: string): JsonValue {
  return new Parser(text).parseDocument();
}
