// Scalar conversions with QEMU 7.2's exact acceptance rules and error texts. Three readers
// exist in QEMU and they differ in wording, so each has its own functions here:
// - "opts": QemuOpts values read by the OptsVisitor (-netdev key=value, -object key=value);
// - "qdev": -device key=value properties parsed by the string input visitor;
// - "json": JSON/QMP values read by the QObject input visitor.
// Integers are handled as bigint so 64-bit limits are exact.

import { OptionError, type ParseContext } from './errors';
import { JsonFloat } from './json';

export const INT64_MIN = -(1n << 63n);
export const INT64_MAX = (1n << 63n) - 1n;
export const UINT64_MAX = (1n << 64n) - 1n;

export type IntWidth = 'int32' | 'int64' | 'uint16' | 'uint32' | 'uint64';

const LIMITS: Record<IntWidth, [bigint, bigint]> = {
  int32: [-(1n << 31n), (1n << 31n) - 1n],
  int64: [INT64_MIN, INT64_MAX],
  uint16: [0n, 0xffffn],
  uint32: [0n, 0xffffffffn],
  uint64: [0n, UINT64_MAX],
};

/** QEMU's generic range check after a 64-bit read: "Parameter 'x' expects uint32_t". */
export function checkWidth(name: string, value: bigint, width: IntWidth): number {
  const [lo, hi] = LIMITS[width];
  if (value < lo || value > hi) throw new OptionError(`Parameter '${name}' expects ${width}_t`);
  return Number(value);
}

// ---- C library number scanning (strtoll/strtoull with base 0 or a fixed base)

const C_SPACE = ' \t\n\v\f\r';

interface Scan {
  negative: boolean;
  magnitude: bigint;
  /** Index just past the digits; equals the start index when nothing was converted. */
  end: number;
}

/** Scans like strtoull/strtoll: leading white space, a sign, then digits in `base`
 *  (0 = auto: "0x" hex, leading "0" octal, else decimal). */
function scanInteger(text: string, base: 0 | 10 | 16): Scan {
  let i = 0;
  while (i < text.length && C_SPACE.includes(text[i]!)) i++;
  let negative = false;
  if (text[i] === '+' || text[i] === '-') {
    negative = text[i] === '-';
    i++;
  }
  let radix: number = base;
  const hasHexPrefix =
    text[i] === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X') && /[0-9a-fA-F]/.test(text[i + 2] ?? '');
  if ((base === 0 || base === 16) && hasHexPrefix) {
    radix = 16;
    i += 2;
  } else if (base === 0) {
    radix = text[i] === '0' ? 8 : 10;
  }
  const digitPattern = radix === 16 ? /[0-9a-fA-F]/ : radix === 8 ? /[0-7]/ : /[0-9]/;
  const start = i;
  while (i < text.length && digitPattern.test(text[i]!)) i++;
  if (i === start) return { negative: false, magnitude: 0n, end: 0 };
  const digits = text.slice(start, i);
  const prefix = radix === 16 ? '0x' : radix === 8 ? '0o' : '';
  return { negative, magnitude: BigInt(prefix + digits), end: i };
}

/** strtoll(text, &end, 0) fully consuming `text`, or undefined (no digits, junk, ERANGE). */
function fullStrtoll(text: string): bigint | undefined {
  const scan = scanInteger(text, 0);
  if (scan.end === 0 || scan.end !== text.length) return undefined;
  const value = scan.negative ? -scan.magnitude : scan.magnitude;
  return value < INT64_MIN || value > INT64_MAX ? undefined : value;
}

/** strtoull(text, &end, 0) fully consuming `text` (a '-' wraps modulo 2^64, as in C). */
function fullStrtoull(text: string): bigint | undefined {
  const scan = scanInteger(text, 0);
  if (scan.end === 0 || scan.end !== text.length || scan.magnitude > UINT64_MAX) return undefined;
  return scan.negative ? -scan.magnitude & UINT64_MAX : scan.magnitude;
}

// ---- booleans (qapi_bool_parse; the same words for QemuOpts and qdev properties)

export function parseBoolText(name: string, value: string): boolean {
  if (value === 'on' || value === 'yes' || value === 'true' || value === 'y') return true;
  if (value === 'off' || value === 'no' || value === 'false' || value === 'n') return false;
  throw new OptionError(`Parameter '${name}' expects 'on' or 'off'`);
}

// ---- OptsVisitor integers (-netdev, -object)

/** Unsigned QemuOpts integer: parse_uint() rejects any '-'; then the width check. */
export function parseOptsUint(name: string, value: string, width: IntWidth): number {
  const trimmed = value.replace(/^[ \t\n\v\f\r]+/, '');
  const parsed = trimmed.startsWith('-') ? undefined : fullStrtoull(value);
  if (parsed === undefined) throw new OptionError(`Parameter '${name}' expects a uint64 value`);
  return checkWidth(name, parsed, width);
}

/** Signed QemuOpts integer: strtoll base 0; then the width check. */
export function parseOptsInt(name: string, value: string, width: IntWidth): number {
  const parsed = fullStrtoll(value);
  if (parsed === undefined) throw new OptionError(`Parameter '${name}' expects an int64 value`);
  return checkWidth(name, parsed, width);
}

// ---- qdev property integers (-device key=value)

export function parseQdevInt(name: string, value: string, width: IntWidth): number {
  const parsed = width.startsWith('u') ? fullStrtoull(value) : fullStrtoll(value);
  if (parsed === undefined) throw new OptionError(`Parameter '${name}' expects integer`);
  return checkWidth(name, parsed, width);
}

// ---- sizes (qemu_strtosz: k/M/G/T/P/E suffixes, powers of 1024, optional fraction)

const SUFFIX_SHIFT: Record<string, bigint> = { B: 0n, K: 10n, M: 20n, G: 30n, T: 40n, P: 50n, E: 60n };

/** qemu_strtosz(); undefined when QEMU would reject the text. */
export function strtosz(text: string, ctx?: ParseContext): bigint | undefined {
  const decimal = scanInteger(text, 10);
  if (decimal.end === 0 || decimal.magnitude > UINT64_MAX) return undefined;
  if (text.slice(0, decimal.end).includes('-')) return undefined;
  let value = decimal.magnitude;
  let end = decimal.end;
  let hex = false;
  let fraction = 0n; // 64-bit fixed-point fraction
  if (value === 0n && (text[end] === 'x' || text[end] === 'X')) {
    const reparsed = scanInteger(text, 16);
    if (reparsed.magnitude > UINT64_MAX) return undefined;
    value = reparsed.magnitude;
    end = reparsed.end === 0 ? end : reparsed.end;
    if (text[end] === '.') return undefined;
    hex = true;
  } else if (text[end] === '.') {
    const m = /^\.([0-9]+)([eE][+-]?[0-9]+)?/.exec(text.slice(end));
    const asDouble = m ? Number(`0${m[0]}`) : NaN;
    if (!m || (asDouble === 0 && /[1-9]/.test(m[1]!))) {
      end++; // strtod failed: QEMU skips just the '.' and goes on
    } else if (m[2] !== undefined) {
      return undefined; // an exponent makes the whole input invalid
    } else {
      end += m[0].length;
      const scaled = asDouble * 2 ** 64;
      fraction = scaled >= 2 ** 64 ? UINT64_MAX : BigInt(Math.floor(scaled));
    }
  }
  const shift = SUFFIX_SHIFT[(text[end] ?? '').toUpperCase()];
  if (shift !== undefined && text[end] !== undefined) {
    if (hex) ctx?.warn?.(`Using a multiplier suffix on hex numbers is deprecated: ${text}`);
    end++;
  }
  const mul = 1n << (shift ?? 0n);
  if (end !== text.length) return undefined;
  if (mul === 1n) return fraction !== 0n ? undefined : value;
  // Exact 64.64 fixed-point product, rounding a half upward; overflow is an error.
  const fracProduct = fraction * mul;
  const total = value * mul + (fracProduct >> 64n) + ((fracProduct >> 63n) & 1n);
  return total > UINT64_MAX ? undefined : total;
}

export function parseSizeText(name: string, value: string, ctx?: ParseContext): number {
  const parsed = strtosz(value, ctx);
  if (parsed === undefined) throw new OptionError(`Parameter '${name}' expects a size value`);
  return Number(parsed);
}

// ---- JSON / QMP values (QObject input visitor)

function typeError(name: string, expected: string): OptionError {
  return new OptionError(`Invalid parameter type for '${name}', expected: ${expected}`);
}

/** The integer held by a JSON value, or undefined when it is not a JSON integer. */
export function jsonInteger(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value >= INT64_MIN && value <= UINT64_MAX ? value : undefined;
  if (typeof value === 'number' && Number.isInteger(value)) {
    const big = BigInt(value);
    return big >= INT64_MIN && big <= UINT64_MAX ? big : undefined;
  }
  return undefined;
}

export function jsonString(name: string, value: unknown): string {
  if (typeof value !== 'string') throw typeError(name, 'string');
  return value;
}

export function jsonBool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw typeError(name, 'boolean');
  return value;
}

/** Signed integer member: a non-integer is a type error; then int64 and the width check. */
export function jsonInt(name: string, value: unknown, width: IntWidth): number {
  const n = jsonInteger(value);
  if (n === undefined) throw typeError(name, 'integer');
  if (n > INT64_MAX) throw new OptionError(`Parameter '${name}' expects int64`);
  return checkWidth(name, n, width);
}

/** Unsigned integer or size member: QEMU accepts negative integers (wrapping modulo 2^64)
 *  for backward compatibility; anything else is "expects uint64". */
export function jsonUint(name: string, value: unknown, width: IntWidth): number {
  const n = jsonInteger(value);
  if (n === undefined || value instanceof JsonFloat) throw new OptionError(`Parameter '${name}' expects uint64`);
  return checkWidth(name, n & UINT64_MAX, width);
}
