// QEMU's QemuOpts "key=value,key=value" grammar (the one -netdev, -device, -object and
// -qmp use in 7.2):
// - parameters are separated by single commas; inside a value ",," stands for one comma;
// - the first parameter may omit "key=" when the option has an implied key (type, driver,
//   qom-type, path); it is implied only when the first parameter has no '=' before its
//   first comma;
// - any other parameter without '=' is a deprecated short-form boolean: "foo" means foo=on,
//   "nofoo" means foo=off (QEMU warns);
// - a key runs up to the first '=' or ','; keys can never contain either;
// - the `id` parameter is taken from its FIRST occurrence and is not an ordinary entry;
//   every other key keeps all its occurrences in order, and readers use the last one.
// - a single trailing comma ends the list.

import type { ParseContext } from './errors';

export interface KeyvalEntry {
  key: string;
  value: string;
}

export interface Keyval {
  /** The first `id=` (or short-form `id`/`noid`), as QemuOpts' opts_parse_id finds it. */
  id?: string;
  /** All other parameters in command-line order (the implied key first when present). */
  entries: KeyvalEntry[];
}

/** Reads one value starting at `p`, turning ",," into ","; returns it and the index of the
 *  terminating single comma (or the end). */
function readValue(text: string, p: number): [string, number] {
  let value = '';
  for (;;) {
    const comma = text.indexOf(',', p);
    if (comma < 0) return [value + text.slice(p), text.length];
    if (text[comma + 1] !== ',') return [value + text.slice(p, comma), comma];
    value += text.slice(p, comma + 1);
    p = comma + 2;
  }
}

interface RawParam {
  key: string;
  value: string;
  /** The short-form spelling when the parameter had no '=' ("foo" / "nofoo"). */
  shortForm?: string;
}

/** One step of QemuOpts' get_opt_name_value(): the parameter at `p` and the index after it. */
function readParam(text: string, p: number, impliedKey: string | undefined): [RawParam, number] {
  let len = 0;
  while (p + len < text.length && text[p + len] !== '=' && text[p + len] !== ',') len++;
  let param: RawParam;
  let end: number;
  if (text[p + len] !== '=') {
    if (impliedKey !== undefined) {
      const [value, next] = readValue(text, p);
      param = { key: impliedKey, value };
      end = next;
    } else {
      const name = text.slice(p, p + len);
      param = name.startsWith('no')
        ? { key: name.slice(2), value: 'off', shortForm: name }
        : { key: name, value: 'on', shortForm: name };
      end = p + len;
    }
  } else {
    const key = text.slice(p, p + len);
    const [value, next] = readValue(text, p + len + 1);
    param = { key, value };
    end = next;
  }
  if (text[end] === ',') end++;
  return [param, end];
}

function* params(text: string, impliedKey: string | undefined): Generator<RawParam> {
  let p = 0;
  let implied = impliedKey;
  while (p < text.length) {
    const [param, next] = readParam(text, p, implied);
    implied = undefined;
    p = next;
    yield param;
  }
}

/**
 * Splits `text` the way QemuOpts does. `impliedKey` names the key of a bare first parameter.
 * Deprecated short-form booleans are reported through `ctx.warn` with QEMU's wording.
 */
export function parseKeyval(text: string, impliedKey?: string, ctx?: ParseContext): Keyval {
  let id: string | undefined;
  // opts_parse_id scans without an implied key, so a bare first word is a flag there.
  for (const param of params(text, undefined)) {
    if (param.key === 'id') {
      id = param.value;
      break;
    }
  }
  const entries: KeyvalEntry[] = [];
  for (const param of params(text, impliedKey)) {
    if (param.shortForm !== undefined && param.key !== 'help' && param.key !== '?') {
      // QEMU special-cases "delay": its modern spelling is nodelay with the opposite value.
      const modern =
        param.key === 'delay' ? `nodelay=${param.value === 'on' ? 'off' : 'on'}` : `${param.key}=${param.value}`;
      ctx?.warn?.(`short-form boolean option '${param.shortForm}' deprecated\nPlease use ${modern} instead`);
    }
    if (param.key === 'id') continue;
    entries.push({ key: param.key, value: param.value });
  }
  return id === undefined ? { entries } : { id, entries };
}

/** The last value given for each key (QemuOpts readers take the last occurrence). */
export function lastValues(entries: readonly KeyvalEntry[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const { key, value } of entries) {
    map.delete(key); // keep the map in order of last occurrence
    map.set(key, value);
  }
  return map;
}

/** Escapes a value for the key=value grammar: every ',' becomes ",,". */
export function escapeValue(value: string): string {
  return value.replaceAll(',', ',,');
}

/**
 * Formats key=value text that parses back to the same pairs. A leading implied value is
 * written bare only when that is unambiguous (no '=' before its first comma); otherwise it
 * is written as `impliedKey=value`.
 */
export function formatKeyval(
  pairs: ReadonlyArray<readonly [string, string]>,
  implied?: { key: string; value: string },
): string {
  const parts: string[] = [];
  if (implied !== undefined) {
    const escaped = escapeValue(implied.value);
    const bareIsSafe = implied.value !== '' && !/^[^,]*=/.test(implied.value);
    parts.push(bareIsSafe ? escaped : `${implied.key}=${escaped}`);
  }
  for (const [key, value] of pairs) {
    if (key === '' || key.includes(',') || key.includes('=')) {
      throw new RangeError(`key ${JSON.stringify(key)} cannot be written in key=value form`);
    }
    parts.push(`${key}=${escapeValue(value)}`);
  }
  return parts.join(',');
}
