// Read valgrind memcheck XML files (--xml=yes) from a Node run and decide whether the
// addon is clean. Node and V8 themselves leave blocks "possibly lost" at exit and trip
// uninitialised-value checks in the GC's conservative stack scan, which is not our code
// even when our callback is further down the stack. So:
//  * an error (invalid read/write, uninitialised use, bad free, ...) is ours when the
//    innermost frame outside the C/C++ runtime libraries is in netplane.node;
//  * a definitely / indirectly / possibly lost block is ours when any frame of the
//    allocation stack is in netplane.node (stricter: whatever we allocate, we free).
// Ours fail the run; the others are counted and listed by kind, never hidden.
//   node scripts/valgrind-report.js file.xml...
'use strict';
const fs = require('node:fs');

const ours = (frame) => /netplane\.node$/.test(frame.obj) || /netplane::/.test(frame.fn);
const runtimeLib = (frame) => /\/(libc|libstdc\+\+|libgcc_s|ld-linux[^/]*|vgpreload[^/]*)\.so/.test(frame.obj);
function isOurs(e) {
  if (e.kind.startsWith('Leak_')) return e.frames.some(ours);
  const inner = e.frames.find((f) => !runtimeLib(f));
  return inner !== undefined && ours(inner);
}
const decode = (s) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
const tag = (xml, name) => {
  const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(xml);
  return m ? decode(m[1].trim()) : '';
};

function parse(file) {
  const xml = fs.readFileSync(file, 'utf8');
  if (!xml.includes('</valgrindoutput>')) throw new Error(`${file}: incomplete valgrind XML (did valgrind crash?)`);
  const errors = [];
  for (const m of xml.matchAll(/<error>([\s\S]*?)<\/error>/g)) {
    const body = m[1];
    const stack = /<stack>([\s\S]*?)<\/stack>/.exec(body);
    const frames = [];
    for (const f of (stack ? stack[1] : '').matchAll(/<frame>([\s\S]*?)<\/frame>/g)) {
      frames.push({ fn: tag(f[1], 'fn'), obj: tag(f[1], 'obj'), file: tag(f[1], 'file'), line: tag(f[1], 'line') });
    }
    const what = tag(body, 'text') || tag(body, 'what');
    errors.push({ kind: tag(body, 'kind'), what, frames });
  }
  return errors;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: valgrind-report.js file.xml...');
  process.exit(2);
}
const counts = new Map();
const failures = [];
for (const file of files) {
  for (const e of parse(file)) {
    const mine = isOurs(e);
    const key = `${e.kind} (${mine ? 'addon' : 'node/V8 only'})`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    const isLeak = e.kind.startsWith('Leak_');
    const countsAsLeak = ['Leak_DefinitelyLost', 'Leak_IndirectlyLost', 'Leak_PossiblyLost'].includes(e.kind);
    if (mine && (!isLeak || countsAsLeak)) failures.push(e);
  }
}

console.log(`valgrind (node + addon): ${files.length} process file(s)`);
if (counts.size === 0) console.log('  no errors, no leaks');
for (const [k, n] of [...counts].sort()) console.log(`  ${String(n).padStart(4)}  ${k}`);
for (const e of failures) {
  console.log(`\n${e.kind}: ${e.what}`);
  for (const f of e.frames.slice(0, 16)) {
    const where = f.file ? ` ${f.file}:${f.line}` : ` (${f.obj.split('/').pop()})`;
    console.log(`    ${ours(f) ? '>' : ' '} ${f.fn || '???'}${where}`);
  }
}
if (failures.length > 0) {
  console.log(`\nvalgrind: ${failures.length} error(s)/leak(s) with a frame in the addon`);
  process.exit(1);
}
console.log('valgrind: no error and no lost block in the addon');
