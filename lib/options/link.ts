// netplane's own "-link a,b": connect two backends directly, queue by queue (no NIC).

import { OptionError, isIdentifier } from './errors';

/** Parses "-link A,B" into the two netdev ids. */
export function parseLinkArg(text: string): [string, string] {
  const parts = text.split(',');
  if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
    throw new OptionError(`-link expects two netdev ids separated by a comma (-link hn0,hn1), got '${text}'`);
  }
  const [a, b] = parts as [string, string];
  for (const id of [a, b]) {
    if (!isIdentifier(id)) throw new OptionError(`-link: '${id}' is not a valid netdev id`);
  }
  if (a === b) throw new OptionError(`-link: cannot link netdev '${a}' to itself`);
  return [a, b];
}
