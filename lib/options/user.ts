// -netdev user (QAPI NetdevUserOptions, QEMU's net/slirp.c): the members, then the checks
// net_slirp_init() makes before it creates the stack, in its order and with its texts, and
// the hostfwd=/guestfwd= rule syntax (slirp_hostfwd, slirp_guestfwd). Addresses are read as
// glibc's inet_aton / inet_pton read them, so what QEMU accepts is accepted here.
import { OptionError, checkIdentifier, type ParseContext } from './errors';
import { leftoverKeys, readFields, type FieldSource, type FieldSpec } from './fields';
import type { KeyvalEntry } from './keyval';
import type { UserNetdevOptions } from './types';

// QAPI member order (QEMU reports the first bad member in it). The list members
// (dnssearch, hostfwd, guestfwd) are read apart: a repeated key adds an element.
const USER_FIELDS: readonly FieldSpec[] = [
  { name: 'hostname', kind: 'str' },
  { name: 'restrict', kind: 'bool' },
  { name: 'ipv4', kind: 'bool' },
  { name: 'ipv6', kind: 'bool' },
  { name: 'ip', kind: 'str' },
  { name: 'net', kind: 'str' },
  { name: 'host', kind: 'str' },
  { name: 'tftp', kind: 'str' },
  { name: 'bootfile', kind: 'str' },
  { name: 'dhcpstart', kind: 'str' },
  { name: 'dns', kind: 'str' },
  { name: 'domainname', kind: 'str' },
  { name: 'ipv6-prefix', kind: 'str' },
  { name: 'ipv6-prefixlen', kind: 'int64' },
  { name: 'ipv6-host', kind: 'str' },
  { name: 'ipv6-dns', kind: 'str' },
  { name: 'smb', kind: 'str' },
  { name: 'smbserver', kind: 'str' },
  { name: 'tftp-server-name', kind: 'str' },
  { name: 'iothread', kind: 'str' }, // netplane: run the stack on an -object iothread
];
const LIST_FIELDS = ['dnssearch', 'hostfwd', 'guestfwd'] as const;

/** -netdev user,... as key=value: QEMU's `ipv6-net=addr[/len]` shorthand first (net_client_init). */
export function parseUserKeyval(id: string, entries: readonly KeyvalEntry[], ctx?: ParseContext): UserNetdevOptions {
  const values = new Map<string, string>();
  const lists: Record<string, string[]> = {};
  for (const e of entries) {
    if ((LIST_FIELDS as readonly string[]).includes(e.key)) (lists[e.key] ??= []).push(e.value);
    else values.set(e.key, e.value);
  }
  const net6 = values.get('ipv6-net');
  if (net6 !== undefined) {
    const slash = net6.indexOf('/');
    let len = 64n;
    if (slash >= 0) {
      const m = /^[ \t\n\v\f\r]*([+-]?)([0-9]+)$/.exec(net6.slice(slash + 1));
      if (!m) throw new OptionError("Parameter 'ipv6-prefixlen' expects a number");
      len = BigInt(m[2]!);
      if (m[1] === '-') len = -len; // qemu_strtoul wraps; read back as an int64 that is -len
    }
    values.delete('ipv6-net');
    values.set('ipv6-prefix', slash >= 0 ? net6.slice(0, slash) : net6);
    values.set('ipv6-prefixlen', len.toString());
  }
  values.delete('type');
  return buildUser(id, { kind: 'opts', values }, lists, 'keyval', ctx);
}

/** QMP netdev_add / JSON -netdev: lists are arrays of { "str": ... } (QAPI's String). */
export function userFromJson(id: string, args: Record<string, unknown>, ctx?: ParseContext): UserNetdevOptions {
  const values: Record<string, unknown> = {};
  const lists: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(args)) {
    if (key === 'id' || key === 'type') continue;
    if (!(LIST_FIELDS as readonly string[]).includes(key)) {
      values[key] = value;
      continue;
    }
    if (!Array.isArray(value)) throw new OptionError(`Invalid parameter type for '${key}', expected: array`);
    lists[key] = value.map((item, i) => {
      const str = (item as { str?: unknown } | null)?.str;
      if (typeof item !== 'object' || item === null || Array.isArray(item))
        throw new OptionError(`Invalid parameter type for '${key}[${i}]', expected: object`);
      if (typeof str !== 'string') throw new OptionError(`Parameter '${key}[${i}].str' is missing`);
      return str;
    });
  }
  return buildUser(id, { kind: 'json', values }, lists, 'json', ctx);
}

function buildUser(
  id: string,
  source: FieldSource,
  lists: Record<string, string[]>,
  dialect: 'keyval' | 'json',
  ctx?: ParseContext,
): UserNetdevOptions {
  const { values, used } = readFields(USER_FIELDS, source, ctx);
  const extra = leftoverKeys(source, used);
  if (extra.length > 0) {
    throw new OptionError(
      dialect === 'json' ? `Parameter '${extra[0]}' is unexpected` : `Invalid parameter '${extra[0]}'`,
    );
  }
  if (dialect === 'json') checkIdentifier(id);
  const opts: UserNetdevOptions = { type: 'user', id };
  Object.assign(opts, values);
  for (const key of LIST_FIELDS) if (lists[key] !== undefined) opts[key] = lists[key];
  return opts;
}

// ---- addresses as glibc reads them ------------------------------------------------------

/** glibc inet_aton(): 1 to 4 parts (a, a.b, a.b.c, a.b.c.d), each decimal, 0x hex or 0 octal;
 *  anything after a whitespace is ignored. Returns the address in host order. */
export function inetAton(text: string): number | undefined {
  const m = /^([^\s]*)(\s.*)?$/s.exec(text);
  const parts = m![1]!.split('.');
  if (parts.length > 4 || parts.some((p) => p === '')) return undefined;
  const nums: number[] = [];
  for (const p of parts) {
    let v: number;
    if (/^0[xX][0-9a-fA-F]*$/.test(p)) v = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    else if (/^0[0-7]*$/.test(p)) v = parseInt(p, 8);
    else if (/^[1-9][0-9]*$/.test(p)) v = Number(p);
    else return undefined;
    if (!Number.isSafeInteger(v) || v > 0xffffffff) return undefined;
    nums.push(v);
  }
  const last = nums.pop()!;
  const lastMax = [0xffffffff, 0xffffff, 0xffff, 0xff][nums.length]!;
  if (last > lastMax || nums.some((n) => n > 0xff)) return undefined;
  let v = 0;
  nums.forEach((n, i) => (v += n * 2 ** (24 - 8 * i)));
  return v + last;
}

export function ntoa(addr: number): string {
  return [addr >>> 24, (addr >>> 16) & 0xff, (addr >>> 8) & 0xff, addr & 0xff].join('.');
}

/** inet_pton(AF_INET6): 16 bytes, or undefined. */
export function inet6Pton(text: string): Uint8Array | undefined {
  if (!/^[0-9A-Fa-f:.]+$/.test(text)) return undefined;
  let head = text;
  let tail4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.')) {
    const v4 = text.slice(lastColon + 1);
    if (!/^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/.test(v4)) return undefined;
    const b = v4.split('.').map(Number);
    tail4 = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    head = text.slice(0, lastColon + 1);
    if (head.endsWith('::')) head += '';
    else if (head.endsWith(':')) head = head.slice(0, -1);
  }
  const halves = head.split('::');
  if (halves.length > 2) return undefined;
  const group = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const a = group(halves[0]!);
  const b = halves.length === 2 ? group(halves[1]!) : [];
  if (!a || !b) return undefined;
  const words = [...a];
  const given = a.length + b.length + tail4.length;
  if (halves.length === 2) {
    if (given > 7) return undefined;
    for (let i = given; i < 8; i++) words.push(0);
  } else if (given !== 8) return undefined;
  words.push(...b, ...tail4);
  const bytes = new Uint8Array(16);
  words.forEach((w, i) => {
    bytes[2 * i] = w >> 8;
    bytes[2 * i + 1] = w & 0xff;
  });
  return bytes;
}

export function inet6Ntop(b: Uint8Array): string {
  const words = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (best < 0) return hex(words);
  return `${hex(words.slice(0, best))}::${hex(words.slice(best + bestLen))}`;
}

function in6EqualNet(a: Uint8Array, b: Uint8Array, len: number): boolean {
  for (let bit = 0; bit < len; bit++) {
    const m = 0x80 >> (bit % 8);
    if ((a[bit >> 3]! & m) !== (b[bit >> 3]! & m)) return false;
  }
  return true;
}

/** C strtol(text, &end, base 0) with *end == '\0' required; undefined otherwise. "" is 0. */
function strtolWhole(text: string, base: 0 | 10): number | undefined {
  if (text === '') return 0;
  const re =
    base === 10 ? /^[ \t\n\v\f\r]*([+-]?)([0-9]+)$/ : /^[ \t\n\v\f\r]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/;
  const m = re.exec(text);
  if (!m) return undefined;
  const d = m[2]!;
  const v = /^0[xX]/.test(d) ? parseInt(d.slice(2), 16) : base === 0 && d.startsWith('0') ? parseInt(d, 8) : Number(d);
  return m[1] === '-' ? -v : v;
}

/** QEMU's get_str_sep(): the text before `sep` (at most size-1 chars) and the rest after it. */
function getStrSep(p: string, sep: string, size = 256): [string, string] | undefined {
  const i = p.indexOf(sep);
  if (i < 0) return undefined;
  return [p.slice(0, Math.min(i, size - 1)), p.slice(i + 1)];
}

// ---- the stack's configuration (net_slirp_init) ------------------------------------------

/** What libslirp is configured with: addresses as text, already defaulted and checked. */
export interface SlirpConfig {
  restricted: boolean;
  ipv4: boolean;
  ipv6: boolean;
  net: string;
  mask: string;
  host: string;
  dhcpStart: string;
  dns: string;
  prefix6: string;
  prefix6Len: number;
  host6: string;
  dns6: string;
  hostname?: string;
  tftpServerName?: string;
  tftpPath?: string;
  bootfile?: string;
  domainname?: string;
  dnssearch: string[];
}

const fail = (message: string): never => {
  throw new OptionError(message);
};

/** net_init_slirp() + net_slirp_init()'s checks and defaults, in QEMU 7.2's order. */
export function resolveSlirpConfig(o: UserNetdevOptions): SlirpConfig {
  // Only one of ipv4/ipv6 given: the other is its opposite.
  let ipv4 = true;
  let ipv6 = true;
  if (o.ipv4 !== undefined && o.ipv6 === undefined) [ipv4, ipv6] = [o.ipv4, !o.ipv4];
  else if (o.ipv6 !== undefined && o.ipv4 === undefined) [ipv4, ipv6] = [!o.ipv6, o.ipv6];
  else if (o.ipv4 !== undefined && o.ipv6 !== undefined) [ipv4, ipv6] = [o.ipv4, o.ipv6];
  const vnetwork = o.net ?? (o.ip !== undefined ? `${o.ip}/24` : undefined);
  if (!ipv4 && (vnetwork !== undefined || o.host !== undefined || o.dns !== undefined))
    fail('IPv4 disabled but netmask/host/dns provided');
  if (!ipv6 && (o['ipv6-prefix'] !== undefined || o['ipv6-host'] !== undefined || o['ipv6-dns'] !== undefined))
    fail('IPv6 disabled but prefix/host6/dns6 provided');
  if (!ipv4 && !ipv6) fail('IPv4 and IPv6 disabled');
  const restricted = o.restrict === true;

  let net = 0x0a000200;
  let mask = 0xffffff00;
  let host = 0x0a000202;
  let dhcp = 0x0a00020f;
  let dns = 0x0a000203;
  if (vnetwork !== undefined) {
    const sep = getStrSep(vnetwork, '/');
    if (sep === undefined) {
      const a = inetAton(vnetwork) ?? fail('Failed to parse netmask');
      net = a;
      if (!(a & 0x80000000)) mask = 0xff000000;
      else if ((a & 0xfff00000) >>> 0 === 0xac100000) mask = 0xfff00000;
      else if ((a & 0xc0000000) >>> 0 === 0x80000000) mask = 0xffff0000;
      else if ((a & 0xffff0000) >>> 0 === 0xc0a80000) mask = 0xffff0000;
      else if ((a & 0xffff0000) >>> 0 === 0xc6120000) mask = 0xfffe0000;
      else if ((a & 0xe0000000) >>> 0 === 0xe0000000) mask = 0xffffff00;
      else mask = 0xfffffff0;
    } else {
      net = inetAton(sep[0]) ?? fail('Failed to parse netmask');
      // strtol base 10 over the whole rest ("" reads as 0), else a dotted mask.
      const m = /^([ \t\n\v\f\r]*[+-]?[0-9]+)?$/.exec(sep[1]);
      if (m === null) {
        mask = inetAton(sep[1]) ?? fail('Failed to parse netmask (trailing chars)');
      } else {
        const shift = sep[1] === '' ? 0 : Number(sep[1]);
        if (shift < 4 || shift > 32) fail('Invalid netmask provided (must be in range 4-32)');
        mask = Number((0xffffffffn << BigInt(32 - shift)) & 0xffffffffn);
      }
    }
    net = (net & mask) >>> 0;
    host = (net | (0x0202 & ~mask)) >>> 0;
    dhcp = (net | (0x020f & ~mask)) >>> 0;
    dns = (net | (0x0203 & ~mask)) >>> 0;
  }
  const inNet = (a: number): boolean => (a & mask) >>> 0 === net;
  if (o.host !== undefined) host = inetAton(o.host) ?? fail('Failed to parse host');
  if (!inNet(host)) fail("Host doesn't belong to network");
  if (o.dns !== undefined) dns = inetAton(o.dns) ?? fail('Failed to parse DNS');
  if (restricted && !inNet(dns)) fail("DNS doesn't belong to network");
  if (dns === host) fail('DNS must be different from host');
  if (o.dhcpstart !== undefined) dhcp = inetAton(o.dhcpstart) ?? fail('Failed to parse DHCP start address');
  if (!inNet(dhcp)) fail("DHCP doesn't belong to network");
  if (dhcp === host || dhcp === dns) fail('DHCP must be different from host and DNS');

  const prefix6 = inet6Pton(o['ipv6-prefix'] ?? 'fec0::') ?? fail('Failed to parse IPv6 prefix');
  const prefix6Len = o['ipv6-prefixlen'] ?? 64;
  if (prefix6Len < 0 || prefix6Len > 126)
    fail('Invalid IPv6 prefix provided (IPv6 prefix length must be between 0 and 126)');
  let host6: Uint8Array;
  if (o['ipv6-host'] !== undefined) {
    host6 = inet6Pton(o['ipv6-host']) ?? fail('Failed to parse IPv6 host');
    if (!in6EqualNet(prefix6, host6, prefix6Len)) fail("IPv6 Host doesn't belong to network");
  } else {
    host6 = Uint8Array.from(prefix6);
    host6[15]! |= 2;
  }
  let dns6: Uint8Array;
  if (o['ipv6-dns'] !== undefined) {
    dns6 = inet6Pton(o['ipv6-dns']) ?? fail('Failed to parse IPv6 DNS');
    if (restricted && !in6EqualNet(prefix6, dns6, prefix6Len)) fail("IPv6 DNS doesn't belong to network");
  } else {
    dns6 = Uint8Array.from(prefix6);
    dns6[15]! |= 3;
  }
  const bytes = (s: string): number => Buffer.byteLength(s);
  if (o.domainname !== undefined && o.domainname === '') fail("'domainname' parameter cannot be empty");
  if (o.domainname !== undefined && bytes(o.domainname) > 255) fail("'domainname' parameter cannot exceed 255 bytes");
  if (o.hostname !== undefined && bytes(o.hostname) > 255) fail("'vhostname' parameter cannot exceed 255 bytes");
  if (o['tftp-server-name'] !== undefined && bytes(o['tftp-server-name']) > 255)
    fail("'tftp-server-name' parameter cannot exceed 255 bytes");
  // netplane: libslirp asserts (and QEMU then fails without a word of why) on these.
  if (o.bootfile !== undefined && bytes(o.bootfile) >= 128)
    fail("'bootfile' parameter cannot exceed 127 bytes (the DHCP file field)");
  for (const name of ['hostname', 'tftp', 'bootfile', 'domainname', 'tftp-server-name'] as const) {
    if (o[name]?.includes('\0')) fail(`Parameter '${name}' must not contain a NUL character`);
  }
  if (o.smb !== undefined || o.smbserver !== undefined) {
    throw new OptionError(
      'smb= and smbserver= (a Samba share for the guest) are not supported by netplane; share files another way',
    );
  }
  const cfg: SlirpConfig = {
    restricted,
    ipv4,
    ipv6,
    net: ntoa(net),
    mask: ntoa(mask),
    host: ntoa(host),
    dhcpStart: ntoa(dhcp),
    dns: ntoa(dns),
    prefix6: inet6Ntop(prefix6),
    prefix6Len,
    host6: inet6Ntop(host6),
    dns6: inet6Ntop(dns6),
    dnssearch: o.dnssearch ?? [],
  };
  if (o.hostname !== undefined) cfg.hostname = o.hostname;
  if (o['tftp-server-name'] !== undefined) cfg.tftpServerName = o['tftp-server-name'];
  if (o.tftp !== undefined) cfg.tftpPath = o.tftp;
  if (o.bootfile !== undefined) cfg.bootfile = o.bootfile;
  if (o.domainname !== undefined) cfg.domainname = o.domainname;
  return cfg;
}

// ---- forwarding rules ----------------------------------------------------------------

export interface HostFwdRule {
  udp: boolean;
  hostAddr: string; // "0.0.0.0" = any
  hostPort: number;
  guestAddr: string; // "0.0.0.0" = libslirp's first DHCP address
  guestPort: number;
}

/** slirp_hostfwd()'s syntax: [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport. */
export function parseHostFwd(rule: string): HostFwdRule {
  const bad = (reason: string): never => fail(`Invalid host forwarding rule '${rule}' (${reason})`);
  let s = getStrSep(rule, ':') ?? bad('No : separators');
  const proto = s[0];
  if (proto !== 'tcp' && proto !== '' && proto !== 'udp') bad('Bad protocol name');
  s = getStrSep(s[1], ':') ?? bad('Missing : separator');
  const hostAddr = s[0] === '' ? 0 : (inetAton(s[0]) ?? bad('Bad host address'));
  s = getStrSep(s[1], '-') ?? bad('Bad host port separator');
  const hostPort = strtolWhole(s[0], 0);
  if (hostPort === undefined || hostPort < 0 || hostPort > 65535) bad('Bad host port');
  s = getStrSep(s[1], ':') ?? bad('Missing guest address');
  const guestAddr = s[0] === '' ? 0 : (inetAton(s[0]) ?? bad('Bad guest address'));
  const guestPort = s[1] === '' ? undefined : strtolWhole(s[1], 0);
  if (guestPort === undefined || guestPort < 1 || guestPort > 65535) bad('Bad guest port');
  return {
    udp: proto === 'udp',
    hostAddr: ntoa(hostAddr),
    hostPort: hostPort!,
    guestAddr: ntoa(guestAddr),
    guestPort: guestPort!,
  };
}

/** hostfwd_remove's syntax: [tcp|udp]:[hostaddr]:hostport; undefined = "invalid format". */
export function parseHostFwdRemove(text: string): Omit<HostFwdRule, 'guestAddr' | 'guestPort'> | undefined {
  let s = getStrSep(text, ':');
  if (!s) return undefined;
  if (s[0] !== 'tcp' && s[0] !== '' && s[0] !== 'udp') return undefined;
  const udp = s[0] === 'udp';
  s = getStrSep(s[1], ':');
  if (!s) return undefined;
  const hostAddr = s[0] === '' ? 0 : inetAton(s[0]);
  if (hostAddr === undefined) return undefined;
  // qemu_strtoi base 10, the whole rest.
  const m = /^[ \t\n\v\f\r]*([+-]?[0-9]+)$/.exec(s[1]);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < -0x80000000 || port > 0x7fffffff) return undefined;
  return { udp, hostAddr: ntoa(hostAddr), hostPort: port };
}

export interface GuestFwdRule {
  guestAddr: string;
  guestPort: number;
  /** cmd:COMMAND: the command run per connection. */
  command?: string;
  /** Otherwise a character device name (netplane refuses it). */
  chardev?: string;
}

/** slirp_guestfwd()'s syntax: tcp:[addr]:port-cmd:COMMAND or tcp:[addr]:port-DEVICE. */
export function parseGuestFwd(rule: string): GuestFwdRule {
  const bad = (): never => fail(`Invalid guest forwarding rule '${rule}'`);
  let s = getStrSep(rule, ':', 128) ?? bad();
  if (s[0] !== 'tcp' && s[0] !== '') bad();
  s = getStrSep(s[1], ':', 128) ?? bad();
  const addr = s[0] === '' ? 0 : (inetAton(s[0]) ?? bad());
  s = getStrSep(s[1], '-', 128) ?? bad();
  const port = s[0] === '' ? undefined : strtolWhole(s[0], 10);
  if (port === undefined || port < 1 || port > 65535) bad();
  const rest = s[1];
  const out: GuestFwdRule = { guestAddr: ntoa(addr), guestPort: port! };
  if (rest.startsWith('cmd:')) out.command = rest.slice(4);
  else out.chardev = rest;
  return out;
}
