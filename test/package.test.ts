// The package as a user gets it: `npm pack` (whose prepack compiles the TypeScript and makes
// the linux-x64 prebuild on purpose), then an install of the tarball into an empty project
// with install scripts off, as npm 11 does until the user approves them: the addon must load
// from the prebuild and the CLI must run, with no compiler involved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..');
const npm = (args: string[], cwd: string): string =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 900_000 });

test(
  'npm pack holds dist, the sources to build from and a fresh linux-x64 prebuild; the tarball installs and runs without install scripts',
  { timeout: 1_200_000 },
  () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'np-pack-'));
    try {
      // Packed from a copy of the checkout, so the prebuild's compile (which replaces build/)
      // leaves this checkout's build alone; node_modules is shared through a link.
      const src = path.join(dir, 'src');
      const skip = new Set(['.git', 'node_modules', 'build', 'dist', 'prebuilds', 'results']);
      fs.cpSync(ROOT, src, {
        recursive: true,
        filter: (from) => !skip.has(path.basename(from)) && !/^build-/.test(path.basename(from)),
      });
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
      // stdout holds prepack's build output, then the JSON report.
      const out = npm(['pack', '--json', '--pack-destination', dir], src);
      const [packed] = JSON.parse(out.slice(out.search(/^\[$/m))) as Array<{
        filename: string;
        files: Array<{ path: string }>;
      }>;
      const files = packed!.files.map((f) => f.path);
      for (const want of [
        'package.json',
        'README.md',
        'binding.gyp',
        'dist/index.js',
        'dist/index.d.ts',
        'dist/cli/main.js',
      ]) {
        assert.ok(files.includes(want), `the tarball has ${want}`);
      }
      const prebuilds = files.filter((f) => f.startsWith('prebuilds/'));
      assert.equal(prebuilds.length, 1, `one prebuild: ${prebuilds.join(', ')}`);
      assert.match(prebuilds[0]!, /^prebuilds\/linux-x64\/netplane(\.napi)?\.node$/);
      assert.ok(
        files.some((f) => f.startsWith('native/core/') && f.endsWith('.cc')),
        'the native sources, to build where no prebuild fits',
      );
      const stray = files.filter(
        (f) => /^(test|bench|build|node_modules|scripts|\.ci)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')),
      );
      assert.deepEqual(stray, [], 'no tests, bench, build output or TypeScript sources');

      const app = path.join(dir, 'app');
      fs.mkdirSync(app);
      fs.writeFileSync(
        path.join(app, 'package.json'),
        JSON.stringify({ name: 'np-pack-app', version: '1.0.0', private: true }),
      );
      npm(
        [
          'install',
          '--ignore-scripts',
          '--no-audit',
          '--no-fund',
          '--prefer-offline',
          path.join(dir, packed!.filename),
        ],
        app,
      );
      const installed = path.join(app, 'node_modules', 'netplane');
      assert.equal(fs.existsSync(path.join(installed, 'build')), false, 'nothing was compiled at install');
      const loaded = execFileSync(
        process.execPath,
        [
          '-e',
          "const np = require('netplane'); const dp = new np.NativeDataPlane(); console.log(require('node-gyp-build').path(require.resolve('netplane/package.json').replace(/package.json$/, ''))); dp.close();",
        ],
        { cwd: app, encoding: 'utf8', timeout: 30_000 },
      );
      assert.match(
        loaded.trim(),
        /node_modules\/netplane\/prebuilds\/linux-x64\/netplane(\.napi)?\.node$/,
        'the addon came from the prebuild',
      );
      const version = execFileSync(path.join(app, 'node_modules', '.bin', 'netplane'), ['--version'], {
        cwd: app,
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.match(version, /^netplane \d+\.\d+\.\d+ \(QEMU 7\.2 network model\)\n$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
