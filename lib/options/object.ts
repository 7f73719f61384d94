// -object iothread,id=X[,poll-max-ns=N][,poll-grow=N][,poll-shrink=N] (key=value or JSON)
// with QEMU 7.2's checks: QemuOpts id rules, int64 members, then the setters' range check
// "<name> value must be in range [0, INT64_MAX]".

import { OptionError, checkIdentifier, type ParseContext } from './errors';
import { leftoverKeys, readFields, type FieldSource, type FieldSpec } from './fields';
import { jsonMembers, parseQemuJson } from './json';
import { lastValues, parseKeyval } from './keyval';
import { INT64_MAX } from './scalars';
import { buildFilterDump } from './filter-dump';
import type { IothreadObjectOptions, ObjectOptions } from './types';

const IOTHREAD_FIELDS: readonly FieldSpec[] = [
  { name: 'poll-max-ns', kind: 'int64' },
  { name: 'poll-grow', kind: 'int64' },
  { name: 'poll-shrink', kind: 'int64' },
];

/** iothread properties QEMU 7.2 has that netplane's event loops do not use. */
const UNSUPPORTED_IOTHREAD_PROPERTIES = new Set(['aio-max-batch', 'thread-pool-min', 'thread-pool-max']);

/** Some object types QEMU has; netplane only creates iothreads. */
const OTHER_QEMU_OBJECT_TYPES =
  /^(memory-backend-|rng-|tls-creds|filter-|colo-compare$|secret|throttle-group$|main-loop$|cryptodev-|authz-|can-|input-linux$|dbus-vmstate$|pr-manager-helper$|acpi-generic-initiator$|x-remote-object$|sev-guest$|igvm-cfg$|confidential-guest)/;

function checkQomType(type: string): void {
  if (type === 'iothread' || type === 'filter-dump') return;
  if (OTHER_QEMU_OBJECT_TYPES.test(type)) {
    throw new OptionError(`Object type '${type}' is not supported by netplane (only iothread and filter-dump)`);
  }
  throw new OptionError(`Parameter 'qom-type' does not accept value '${type}'`);
}

function buildIothread(
  id: string,
  source: FieldSource,
  dialect: 'keyval' | 'json',
  ctx?: ParseContext,
): IothreadObjectOptions {
  const { values, used } = readFields(IOTHREAD_FIELDS, source, ctx);
  used.add('qom-type');
  used.add('id');
  for (const key of leftoverKeys(source, used)) {
    if (UNSUPPORTED_IOTHREAD_PROPERTIES.has(key)) {
      throw new OptionError(`Property 'iothread.${key}' is not supported by netplane`);
    }
    throw new OptionError(dialect === 'json' ? `Parameter '${key}' is unexpected` : `Invalid parameter '${key}'`);
  }
  if (dialect === 'json') checkIdentifier(id);
  const out: IothreadObjectOptions = { qomType: 'iothread', id };
  for (const spec of IOTHREAD_FIELDS) {
    const value = values[spec.name] as number | undefined;
    if (value === undefined) continue;
    if (value < 0) throw new OptionError(`${spec.name} value must be in range [0, ${INT64_MAX}]`);
    out[spec.name as 'poll-max-ns' | 'poll-grow' | 'poll-shrink'] = value;
  }
  return out;
}

/** Parses `-object` text (implied key `qom-type`), or JSON when it starts with '{'. */
export function parseObjectArg(text: string, ctx?: ParseContext): ObjectOptions {
  if (text.startsWith('{')) {
    return objectFromJson(jsonMembers(parseQemuJson(text)), ctx);
  }
  const kv = parseKeyval(text, 'qom-type', ctx);
  if (kv.id !== undefined) checkIdentifier(kv.id);
  const values = lastValues(kv.entries);
  const type = values.get('qom-type');
  if (type === undefined) throw new OptionError("Parameter 'qom-type' is missing");
  checkQomType(type);
  if (kv.id === undefined) throw new OptionError("Parameter 'id' is missing");
  if (type === 'filter-dump') return buildFilterDump(kv.id, { kind: 'opts', values }, 'keyval', ctx);
  return buildIothread(kv.id, { kind: 'opts', values }, 'keyval', ctx);
}

/** object-add-style JSON arguments (also the JSON -object form). */
export function objectFromJson(input: Record<string, unknown>, ctx?: ParseContext): ObjectOptions {
  const args = jsonMembers(input);
  const own = (key: string): boolean => Object.prototype.hasOwnProperty.call(args, key);
  if (!own('qom-type')) throw new OptionError("Parameter 'qom-type' is missing");
  const type = args['qom-type'];
  if (typeof type !== 'string') throw new OptionError("Invalid parameter type for 'qom-type', expected: string");
  checkQomType(type);
  if (!own('id')) throw new OptionError("Parameter 'id' is missing");
  if (typeof args.id !== 'string') throw new OptionError("Invalid parameter type for 'id', expected: string");
  if (type === 'filter-dump') return buildFilterDump(args.id, { kind: 'json', values: args }, 'json', ctx);
  return buildIothread(args.id, { kind: 'json', values: args }, 'json', ctx);
}

/** The -object types netplane creates (`-object help`). */
export const OBJECT_TYPES: readonly string[] = ['iothread', 'filter-dump'];
