// Errors of the option parser. The message is QEMU's exact first line where QEMU has one;
// QEMU's optional second line (a hint) is kept apart so QMP can report the message alone,
// as QEMU does, and the CLI can print both lines.

import { NetplaneError } from '../errors';

export class OptionError extends NetplaneError {
  /** QEMU's hint line (printed after the message on the command line), if any. */
  readonly hint?: string;

  constructor(message: string, hint?: string) {
    super('NETPLANE_INVALID_OPTION', message);
    if (hint !== undefined) this.hint = hint;
  }

  /** The message as QEMU prints it on the command line: message, then the hint line. */
  get fullText(): string {
    return this.hint === undefined ? this.message : `${this.message}\n${this.hint}`;
  }
}

export const IDENTIFIER_HINT = "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.";

/** QEMU's id_wellformed(): an ASCII letter, then letters, digits, '-', '.', '_'. */
export function isIdentifier(id: string): boolean {
  return /^[A-Za-z][A-Za-z0-9._-]*$/.test(id);
}

/** Throws QEMU's "expects an identifier" error (with its hint) unless `id` is one. */
export function checkIdentifier(id: string, param = 'id'): void {
  if (!isIdentifier(id)) throw new OptionError(`Parameter '${param}' expects an identifier`, IDENTIFIER_HINT);
}

/** Sink for QEMU-style warnings (deprecated short-form booleans, hex size suffixes). */
export interface ParseContext {
  warn?: (message: string) => void;
}
