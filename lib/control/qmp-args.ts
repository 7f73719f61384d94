// QMP command arguments checked the way QEMU's QAPI input visitor checks them: members in
// schema order (missing or wrongly typed ones first), then any member the schema does not
// know. The texts are QEMU's.
import { NetplaneError, type QmpErrorClass } from '../errors';
import { JsonFloat } from '../options/json';

/** A failure reported to the QMP client as {"error": {"class", "desc"}}. */
export class QmpError extends Error {
  constructor(
    readonly errorClass: QmpErrorClass,
    message: string,
  ) {
    super(message);
  }
}
Object.defineProperty(QmpError.prototype, 'name', { value: 'QmpError', enumerable: false });

export type QmpArgType = 'string' | 'boolean' | 'integer' | 'number' | 'object' | 'any' | { list: QmpArgType };

export interface QmpArgSpec {
  type: QmpArgType;
  optional?: boolean;
}

export type QmpArgSchema = Record<string, QmpArgSpec>;

function typeName(type: QmpArgType): string {
  return typeof type === 'string' ? type : 'array';
}

function matches(type: QmpArgType, value: unknown): boolean {
  if (typeof type === 'object') return Array.isArray(value);
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    // The JSON reader keeps integers exact (number or bigint) and marks literals written with
    // a fraction or exponent as JsonFloat: QAPI never takes those as integers.
    case 'integer':
      return (typeof value === 'number' && Number.isInteger(value)) || typeof value === 'bigint';
    case 'number':
      return typeof value === 'number' || typeof value === 'bigint' || value instanceof JsonFloat;
    case 'object':
      return value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof JsonFloat);
    case 'any':
      return true;
  }
}

function checkValue(name: string, type: QmpArgType, value: unknown): void {
  if (!matches(type, value)) {
    throw new QmpError('GenericError', `Invalid parameter type for '${name}', expected: ${typeName(type)}`);
  }
  if (typeof type === 'object') {
    (value as unknown[]).forEach((item, i) => checkValue(`${name}[${i}]`, type.list, item));
  }
}

/** Check `args` against `schema`; returns the same object, now known to be well typed. */
export function checkArgs(args: Record<string, unknown>, schema: QmpArgSchema): Record<string, unknown> {
  for (const [name, spec] of Object.entries(schema)) {
    if (!Object.prototype.hasOwnProperty.call(args, name)) {
      if (spec.optional) continue;
      throw new QmpError('GenericError', `Parameter '${name}' is missing`);
    }
    checkValue(name, spec.type, args[name]);
  }
  for (const name of Object.keys(args)) {
    if (!Object.prototype.hasOwnProperty.call(schema, name)) {
      throw new QmpError('GenericError', `Parameter '${name}' is unexpected`);
    }
  }
  return args;
}

/** Turn anything a command threw into the QMP error the client sees. */
export function toQmpError(e: unknown): QmpError {
  if (e instanceof QmpError) return e;
  if (e instanceof NetplaneError) return new QmpError(e.qmpClass, e.message);
  // An unexpected exception is a bug on our side; the client still gets an answer.
  return new QmpError('GenericError', e instanceof Error ? e.message : String(e));
}
