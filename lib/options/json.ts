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
  null | boolean | number | bigint | string | JsonFloat | JsonValue[] | { [key: string]: JsonValue };

const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;
const MAX_DEPTH = 1024; // QEMU's parser limit on nesting

function parseError(detail: string): OptionError {
  return new OptionError(`JSON parse error, ${detail}`);
}

// ---- lexer: QEMU finds lexical errors (stray characters, malformed numbers, unterminated
// strings) before it parses, so the first of those wins over any grammar error.

type Token =
  | { kind: 'punct'; text: '{' | '}' | '[' | ']' | ':' | ',' }
  | { kind: 'string'; raw: string; quote: string }
  | { kind: 'number'; text: string }
  | { kind: 'keyword'; text: string };

const WHITE = ' \t\n\r';
const DIGIT = /[0-9]/;

/** Length of the number token at `i`, or the length of the stray text (through the first
 *  bad character) as a negative number. Follows QEMU's number states. */
function lexNumber(text: string, i: number): number {
  let j = i;
  const at = (k: number): string => text[k] ?? '';
  const fail = (k: number): number => -(Math.min(k + 1, text.length) - i);
  if (at(j) === '-') {
    j++;
    if (!/[0-9]/.test(at(j))) return fail(j);
  }
  if (at(j) === '0') {
    j++;
    if (DIGIT.test(at(j))) return fail(j);
  } else {
    while (DIGIT.test(at(j))) j++;
  }
  if (at(j) === '.') {
    j++;
    if (!DIGIT.test(at(j))) return fail(j);
    while (DIGIT.test(at(j))) j++;
  }
  if (at(j) === 'e' || at(j) === 'E') {
    j++;
    if (at(j) === '+' || at(j) === '-') j++;
    if (!DIGIT.test(at(j))) return fail(j);
    while (DIGIT.test(at(j))) j++;
  }
  return j - i;
}

function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (WHITE.includes(c)) {
      i++;
    } else if ('{}[]:,'.includes(c)) {
      tokens.push({ kind: 'punct', text: c as '{' });
      i++;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) throw parseError(`stray '${text.slice(i)}'`);
      tokens.push({ kind: 'string', raw: text.slice(i + 1, j), quote: c });
      i = j + 1;
    } else if (c === '-' || DIGIT.test(c)) {
      const len = lexNumber(text, i);
      if (len < 0) throw parseError(`stray '${text.slice(i, i - len)}'`);
      tokens.push({ kind: 'number', text: text.slice(i, i + len) });
      i += len;
    } else if (c >= 'a' && c <= 'z') {
      let j = i;
      while (j < text.length && text[j]! >= 'a' && text[j]! <= 'z') j++;
      tokens.push({ kind: 'keyword', text: text.slice(i, j) });
      i = j;
    } else {
      throw parseError(`stray '${c}'`);
    }
  }
  return tokens;
}

// ---- parser

const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  "'": "'",
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

function decodeString(raw: string): string {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c.charCodeAt(0) < 0x20) throw parseError('invalid control character in string');
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = raw[++i] ?? '';
    if (Object.prototype.hasOwnProperty.call(SIMPLE_ESCAPES, e)) {
      out += SIMPLE_ESCAPES[e];
    } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(raw.slice(i + 1, i + 5))) {
      out += String.fromCharCode(parseInt(raw.slice(i + 1, i + 5), 16));
      i += 4;
    } else {
      throw parseError('invalid escape sequence in string');
    }
  }
  return out;
}

function numberValue(text: string): number | bigint | JsonFloat {
  if (!/[.eE]/.test(text)) {
    const big = BigInt(text);
    if (big >= INT64_MIN && big <= UINT64_MAX) {
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
    }
  }
  return new JsonFloat(Number(text));
}

class Parser {
  private pos = 0;
  constructor(private readonly tokens: Token[]) {}

  private next(): Token {
    const token = this.tokens[this.pos++];
    if (token === undefined) throw parseError('premature EOI');
    return token;
  }

  private isPunct(token: Token, text: string): boolean {
    return token.kind === 'punct' && token.text === text;
  }

  parseDocument(): JsonValue {
    const value = this.parseValue(0);
    if (this.pos < this.tokens.length) throw new OptionError('Expecting at most one JSON value');
    return value;
  }

  private parseValue(depth: number): JsonValue {
    if (depth > MAX_DEPTH) throw parseError('too many nested data structures');
    const token = this.next();
    switch (token.kind) {
      case 'string':
        return decodeString(token.raw);
      case 'number':
        return numberValue(token.text);
      case 'keyword':
        if (token.text === 'true') return true;
        if (token.text === 'false') return false;
        if (token.text === 'null') return null;
        throw parseError(`invalid keyword '${token.text}'`);
      case 'punct':
        if (token.text === '{') return this.parseObject(depth);
        if (token.text === '[') return this.parseArray(depth);
        throw parseError('expecting value');
    }
  }

  private parseObject(depth: number): { [key: string]: JsonValue } {
    // Own properties only, defined (never assigned), so a "__proto__" key stays a member.
    const out: { [key: string]: JsonValue } = {};
    const seen = new Set<string>();
    const first = this.tokens[this.pos];
    if (first !== undefined && this.isPunct(first, '}')) {
      this.pos++;
      return out;
    }
    for (;;) {
      const key = this.parseValue(depth + 1);
      if (typeof key !== 'string') throw parseError('key is not a string in object');
      if (!this.isPunct(this.next(), ':')) throw parseError('missing : in object pair');
      const value = this.parseValue(depth + 1);
      if (seen.has(key)) throw parseError('duplicate key');
      seen.add(key);
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
      const sep = this.next();
      if (this.isPunct(sep, '}')) return out;
      if (!this.isPunct(sep, ',')) throw parseError('expected separator in dict');
    }
  }

  private parseArray(depth: number): JsonValue[] {
    const list: JsonValue[] = [];
    const first = this.tokens[this.pos];
    if (first !== undefined && this.isPunct(first, ']')) {
      this.pos++;
      return list;
    }
    for (;;) {
      list.push(this.parseValue(depth + 1));
      const sep = this.next();
      if (this.isPunct(sep, ']')) return list;
      if (!this.isPunct(sep, ',')) throw parseError('expected separator in list');
    }
  }
}

/** Parses QEMU-dialect JSON text; throws OptionError with QEMU's wording on bad input. */
export function parseQemuJson(text: string): JsonValue {
  return new Parser(lex(text)).parseDocument();
}

/** The members of a JSON object; any other value has none. QEMU's visitors look members up
 *  by name, so a non-object simply lacks the required ones ("Parameter 'id' is missing"). */
export function jsonMembers(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof JsonFloat)
    ? (value as Record<string, unknown>)
    : {};
}
