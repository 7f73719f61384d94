// The examples in examples/ run as written (README "For a hypervisor"): each is started as a
// user would start it from the checkout, `node --import tsx examples/<name>.ts`, importing
// 'netplane' (the package's own name, resolved to dist/ by its exports map, so `npm run
// build` first, as `npm test` does). Unprivileged; each bounded in time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..');

function runExample(name: string): Promise<string> {
  assert.ok(fs.existsSync(path.join(ROOT, 'dist', 'index.js')), 'dist/ is built (npm run build:ts)');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join('examples', name)],
      { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${name}: ${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

test('examples/hypervisor-virtqueues.ts: frames both ways through the guest rings', async () => {
  const out = await runExample('hypervisor-virtqueues.ts');
  assert.match(out, /far end received 60 bytes from the guest's tx ring/);
  assert.match(out, /guest rx ring got the answer: yes; interrupts: [1-9]/);
  assert.match(out, /net0 \(virtio-device\): frames in 2, out 2, dropped 0/);
  assert.match(out, /set-up: 1 region\(s\), rings 0,1/);
});

test('examples/hypervisor-ports.ts: partial receive, bare frames, link changes', async () => {
  const out = await runExample('hypervisor-ports.ts');
  assert.match(out, /guest has 2 frames; the rest waits in the port/);
  assert.match(out, /guest has 6 frames, tags 1,2,3,4,5,6/);
  assert.match(out, /wire got 64 bytes \(no vnet header\)/);
  assert.match(out, /link up: false, config interrupts: 1/);
  assert.match(out, /direct port: link down \(peer-removed\)/);
});

test('examples/hypervisor-vhost-user.ts: the guest rings pass through to a vhost-user back-end', async () => {
  const out = await runExample('hypervisor-vhost-user.ts');
  assert.match(out, /back-end connected: link up in the guest's config: true/);
  assert.match(out, /switch port received 60 bytes from the guest's tx ring/);
  assert.match(out, /guest rx ring got the answer: yes/);
  assert.match(out, /netplane's own queues moved 0 frames \(control only\)/);
  assert.match(out, /back-end gone: link up false, config interrupts 1/);
  assert.match(out, /back-end back: link up true, a second frame crossed/);
  assert.match(out, /tx ring stopped at 2/);
});
