// -object filter-dump,id=F,netdev=N,file=PATH[,maxlen=N][,queue=rx|tx|all][,status=on|off]
//   [,position=head|tail|id=<id>][,insert=behind|before][,buffer-size=SIZE]
// (key=value, JSON, or QMP object-add), with QEMU 7.2's texts. The checks QEMU makes when
// the object completes (the netdev exists, the file opens) belong to the topology; those it
// makes in a property setter (maxlen=0, status=, position=) print without the option's
// location in QEMU, so they carry `located: false`.
// netplane's own: buffer-size= (bytes per captured queue; default 4 MiB) bounds the memory a
// capture may hold between the data plane and the file; what does not fit is counted.
import { OptionError, checkIdentifier, type ParseContext } from './errors';
import { leftoverKeys, readFields, type FieldSource, type FieldSpec } from './fields';
import type { FilterDumpObjectOptions } from './types';

// Members in the order QEMU's property reads reach them.
const FILTER_DUMP_FIELDS: readonly FieldSpec[] = [
  { name: 'netdev', kind: 'str', required: true },
  { name: 'queue', kind: 'str' },
  { name: 'status', kind: 'str' },
  { name: 'position', kind: 'str' },
  { name: 'insert', kind: 'str' },
  { name: 'file', kind: 'str', required: true },
  { name: 'maxlen', kind: 'uint32' },
  { name: 'buffer-size', kind: 'size' },
];

/** QEMU's default snap length. */
export const FILTER_DUMP_DEFAULT_MAXLEN = 65536;
/** Per captured queue, in bytes. */
export const FILTER_DUMP_DEFAULT_BUFFER = 4 * 1024 * 1024;
const MIN_BUFFER = 4096;
const MAX_BUFFER = 1 << 30;

/** An error QEMU reports from a property setter or complete(): no option location. */
export function unlocated(message: string): OptionError {
  const e = new OptionError(message);
  Object.defineProperty(e, 'located', { value: false, enumerable: false });
  return e;
}

function checkEnum(name: string, value: string, allowed: readonly string[]): void {
  if (!allowed.includes(value)) throw new OptionError(`Parameter '${name}' does not accept value '${value}'`);
}

/** Builds the options from one source; `id` already checked for presence. */
export function buildFilterDump(
  id: string,
  source: FieldSource,
  dialect: 'keyval' | 'json',
  ctx?: ParseContext,
): FilterDumpObjectOptions {
  const { values, used } = readFields(FILTER_DUMP_FIELDS, source, ctx);
  used.add('qom-type');
  used.add('id');
  for (const key of leftoverKeys(source, used)) {
    throw new OptionError(dialect === 'json' ? `Parameter '${key}' is unexpected` : `Invalid parameter '${key}'`);
  }
  if (dialect === 'json') checkIdentifier(id);
  const out: FilterDumpObjectOptions = {
    qomType: 'filter-dump',
    id,
    netdev: values.netdev as string,
    file: values.file as string,
  };
  if (values.queue !== undefined) {
    checkEnum('queue', values.queue as string, ['all', 'rx', 'tx']);
    out.queue = values.queue as 'all' | 'rx' | 'tx';
  }
  if (values.insert !== undefined) {
    checkEnum('insert', values.insert as string, ['before', 'behind']);
    out.insert = values.insert as 'before' | 'behind';
  }
  if (values.status !== undefined) {
    if (values.status !== 'on' && values.status !== 'off')
      throw unlocated("Invalid value for netfilter status, should be 'on' or 'off'");
    out.status = values.status;
  }
  if (values.position !== undefined) {
    const p = values.position as string;
    if (p !== 'head' && p !== 'tail' && !p.startsWith('id='))
      throw unlocated("Parameter 'position' expects 'head', 'tail' or 'id=<id>'");
    out.position = p;
  }
  if (values.maxlen !== undefined) {
    if (values.maxlen === 0) throw unlocated("Property 'filter-dump.maxlen' doesn't take value '0'");
    out.maxlen = values.maxlen as number;
  }
  if (values['buffer-size'] !== undefined) {
    const b = values['buffer-size'] as number;
    if (b < MIN_BUFFER || b > MAX_BUFFER)
      throw new OptionError(`Parameter 'buffer-size' expects a size between ${MIN_BUFFER} and ${MAX_BUFFER} bytes`);
    out['buffer-size'] = b;
  }
  if (out.file === '') throw new OptionError("Parameter 'file' must not be empty");
  if (out.file.includes('\0')) throw new OptionError("Parameter 'file' must not contain a NUL character");
  return out;
}
