// The argument grammar of QEMU's human monitor, for the commands we implement.
//
// A command line is a name and arguments typed by the command's definition: `s` a word or a
// double-quoted string, `b` exactly "on" or "off", `O` the rest of the line (QemuOpts
// text), `?` marks an optional argument. Parse failures print QEMU's texts followed by
// `Try "help <name>" for more information`.

export type HmpArgKind = 's' | 's?' | 'b' | 'O';

export class HmpSyntaxError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
  }

  /** The lines QEMU prints for a syntax error. */
  get text(): string {
    return `${this.message}\nTry "help ${this.command}" for more information\n`;
  }
}

/** A cursor over one command line. */
export class HmpLine {
  private pos = 0;

  constructor(private readonly line: string) {}

  skipSpace(): void {
    while (this.pos < this.line.length && /\s/.test(this.line[this.pos]!)) this.pos++;
  }

  atEnd(): boolean {
    this.skipSpace();
    return this.pos >= this.line.length;
  }

  /** A bare word up to the next blank, or a double-quoted string with C escapes. */
  word(): string | undefined {
    this.skipSpace();
    if (this.pos >= this.line.length) return undefined;
    if (this.line[this.pos] !== '"') {
      const start = this.pos;
      while (this.pos < this.line.length && !/\s/.test(this.line[this.pos]!)) this.pos++;
      return this.line.slice(start, this.pos);
    }
    this.pos++;
    let out = '';
    while (this.pos < this.line.length && this.line[this.pos] !== '"') {
      let c = this.line[this.pos++]!;
      if (c === '\\' && this.pos < this.line.length) {
        const e = this.line[this.pos++]!;
        c = e === 'n' ? '\n' : e === 'r' ? '\r' : e;
      }
      out += c;
    }
    if (this.pos >= this.line.length) return undefined; // unterminated quote
    this.pos++;
    return out;
  }

  /** Everything after the current position, leading blanks skipped. */
  rest(): string {
    this.skipSpace();
    const r = this.line.slice(this.pos);
    this.pos = this.line.length;
    return r;
  }
}

/** Parse the arguments of `command` from `line` (positioned after the command name). */
export function parseHmpArgs(
  command: string,
  kinds: readonly HmpArgKind[],
  line: HmpLine,
): Array<string | boolean | undefined> {
  const values: Array<string | boolean | undefined> = [];
  for (const kind of kinds) {
    switch (kind) {
      case 's': {
        const w = line.word();
        if (w === undefined) throw new HmpSyntaxError(`${command}: string expected`, command);
        values.push(w);
        break;
      }
      case 's?':
        values.push(line.atEnd() ? undefined : line.word());
        break;
      case 'b': {
        const w = line.word();
        if (w !== 'on' && w !== 'off') throw new HmpSyntaxError("Expected 'on' or 'off'", command);
        values.push(w === 'on');
        break;
      }
      case 'O':
        values.push(line.rest());
        break;
    }
  }
  if (!line.atEnd()) throw new HmpSyntaxError(`${command}: extraneous characters at the end of line`, command);
  return values;
}
