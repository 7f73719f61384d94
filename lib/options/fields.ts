// A tiny QAPI-like member reader: a struct is a list of typed members read in schema order
// (QEMU reports the first bad member in that order, whatever the command-line order), from
// one of three sources with QEMU's per-source wording (see scalars.ts). Keys left over are
// reported by the caller, because the wording of that error depends on the option.

import { OptionError, type ParseContext } from './errors';
import {
  jsonBool,
  jsonInt,
  jsonString,
  jsonUint,
  parseBoolText,
  parseOptsInt,
  parseOptsUint,
  parseQdevInt,
  parseSizeText,
  type IntWidth,
} from './scalars';

export type FieldKind = 'str' | 'bool' | 'size' | IntWidth;

export interface FieldSpec {
  name: string;
  kind: FieldKind;
  required?: boolean;
}

/** Where member values come from: QemuOpts strings (OptsVisitor or qdev wording) or JSON. */
export type FieldSource =
  | { kind: 'opts'; values: Map<string, string> }
  | { kind: 'qdev'; values: Map<string, string> }
  | { kind: 'json'; values: Record<string, unknown> };

export type FieldValue = string | boolean | number;

function hasKey(source: FieldSource, name: string): boolean {
  return source.kind === 'json' ? Object.prototype.hasOwnProperty.call(source.values, name) : source.values.has(name);
}

function rawValue(source: FieldSource, name: string): unknown {
  return source.kind === 'json' ? source.values[name] : source.values.get(name);
}

function convert(source: FieldSource, spec: FieldSpec, raw: unknown, ctx?: ParseContext): FieldValue {
  const { name, kind } = spec;
  if (source.kind === 'json') {
    switch (kind) {
      case 'str':
        return jsonString(name, raw);
      case 'bool':
        return jsonBool(name, raw);
      case 'size':
        return jsonUint(name, raw, 'uint64');
      default:
        return kind.startsWith('u') ? jsonUint(name, raw, kind) : jsonInt(name, raw, kind);
    }
  }
  const text = raw as string;
  switch (kind) {
    case 'str':
      return text;
    case 'bool':
      return parseBoolText(name, text);
    case 'size':
      return parseSizeText(name, text, ctx);
    default:
      if (source.kind === 'qdev') return parseQdevInt(name, text, kind);
      return kind.startsWith('u') ? parseOptsUint(name, text, kind) : parseOptsInt(name, text, kind);
  }
}

/**
 * Reads `specs` in order from `source` into a plain object (absent optional members are
 * left out) and returns it with the set of keys it consumed.
 */
export function readFields(
  specs: readonly FieldSpec[],
  source: FieldSource,
  ctx?: ParseContext,
): { values: Record<string, FieldValue>; used: Set<string> } {
  const values: Record<string, FieldValue> = {};
  const used = new Set<string>();
  for (const spec of specs) {
    if (!hasKey(source, spec.name)) {
      if (spec.required) throw new OptionError(`Parameter '${spec.name}' is missing`);
      continue;
    }
    values[spec.name] = convert(source, spec, rawValue(source, spec.name), ctx);
    used.add(spec.name);
  }
  return { values, used };
}

/** The keys of `source` that no member consumed, in their order of appearance. */
export function leftoverKeys(source: FieldSource, used: ReadonlySet<string>): string[] {
  const keys = source.kind === 'json' ? Object.keys(source.values) : [...source.values.keys()];
  return keys.filter((key) => !used.has(key));
}
