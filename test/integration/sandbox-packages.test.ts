/**
 * Packages for tool code, in the real nsjail: the example's pinned packages (sandbox-image/
 * packages/, fetched by version and hash) are importable by python and node tools, read-only,
 * never shadow the standard library, and a package the packages directory lacks fails with an
 * error naming it. Prepared roots carry the packages and are checked at start like the rest.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PACKAGES_DIR } from '../../src/executor/packages.ts';
import { createSandboxExecutor, prepareRuntimeRoots } from '../../src/executor/sandbox-executor.ts';
import { nsjailForTests, toolCall } from '../../src/executor/testing.ts';
import type { SandboxExecutor, ToolCallResult } from '../../src/executor/types.ts';
import { ErrorCode, isMcpworksError } from '../../src/shared/errors.ts';
import { EXAMPLE_PINS, ensureExamplePackages } from '../harness/packages.ts';

const text = (r: ToolCallResult) => r.content.map((c) => c.text).join('');

let packages: string;
let executor: SandboxExecutor;

before(async () => {
  packages = await ensureExamplePackages();
  executor = await createSandboxExecutor({
    nsjailPath: nsjailForTests(),
    warmPoolSize: 0,
    packagesDir: packages,
  });
  await executor.probe();
});
after(async () => {
  await executor?.close();
});

describe('a packages directory', () => {
  test('a python tool imports and uses the pinned package', async () => {
    const r = await executor.execute(
      toolCall(
        'python',
        'import idna\nfrom idna.package_data import __version__\n' +
          'def main(args):\n    return {"ace": idna.encode(args["name"]).decode(), "version": __version__, "file": idna.__file__}\n',
        { args: { name: 'bücher.example' } },
      ),
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), {
      ace: 'xn--bcher-kva.example',
      version: EXAMPLE_PINS.python.idna,
      file: `${PACKAGES_DIR}/python/idna/__init__.py`,
    });
  });

  test('a node tool requires and uses the pinned package', async () => {
    const r = await executor.execute(
      toolCall(
        'node',
        "const ms = require('ms');\n" +
          "function main(args) { return { ms: ms(args.span), version: require('ms/package.json').version, file: require.resolve('ms') }; }",
        { args: { span: '2 days' } },
      ),
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), {
      ms: 172_800_000,
      version: EXAMPLE_PINS.node.ms,
      file: `${PACKAGES_DIR}/node/node_modules/ms/index.js`,
    });
  });

  test('a python tool importing a package the image lacks gets an error naming it', async () => {
    const r = await executor.execute(
      toolCall('python', 'import yaml.parser\ndef main(args):\n    return 1\n'),
    );
    assert.equal(r.outcome, 'error');
    assert.match(
      r.message ?? '',
      /^ModuleNotFoundError: No module named 'yaml': the executor image does not carry the package providing 'yaml' \(python packages are looked up in \/opt\/mcpworks\/packages\/python; .*\) \(line 1\)$/,
    );
  });

  test('a node tool requiring a package the image lacks gets an error naming it', async () => {
    const r = await executor.execute(
      toolCall('node', "const x = require('@acme/client/sub');\nfunction main() { return 1; }"),
    );
    assert.equal(r.outcome, 'error');
    assert.match(
      r.message ?? '',
      /^Error: Cannot find module '@acme\/client\/sub': the executor image does not carry the npm package '@acme\/client' \(node packages are looked up in \/opt\/mcpworks\/packages\/node\/node_modules;/,
    );
    assert.doesNotMatch(r.message ?? '', /Require stack/);
  });

  test('python cannot write to the packages: new files and changes to installed ones fail', async () => {
    const r = await executor.execute(
      toolCall(
        'python',
        'import errno, idna\n' +
          'def main(args):\n' +
          '    out = []\n' +
          `    for path, mode in [("${PACKAGES_DIR}/python/planted.py", "w"), (idna.__file__, "a"), ("${PACKAGES_DIR}/python/idna/__pycache__/x.pyc", "wb")]:\n` +
          '        try:\n' +
          '            open(path, mode).write("x")\n' +
          '            out.append("written")\n' +
          '        except OSError as e:\n' +
          '            out.append(errno.errorcode[e.errno])\n' +
          '    return out\n',
      ),
    );
    assert.equal(r.outcome, 'ok', text(r));
    // creating: the read-only mount; changing: the file is root's, and the mount is read-only too
    assert.deepEqual(JSON.parse(text(r)), ['EROFS', 'EACCES', 'EROFS']);
  });

  test('node cannot write to the packages either, and the host files are unchanged', async () => {
    const host = join(packages, 'node', 'node_modules', 'ms', 'index.js');
    const before = readFileSync(host);
    const r = await executor.execute(
      toolCall(
        'node',
        "const fs = require('node:fs');\n" +
          'function main() {\n' +
          "  return [require.resolve('ms'), '/opt/mcpworks/packages/node/node_modules/planted.js'].map((p) => {\n" +
          "    try { fs.appendFileSync(p, 'module.exports = 1'); return 'written'; } catch (e) { return e.code; }\n" +
          '  });\n' +
          '}',
      ),
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), ['EACCES', 'EROFS']);
    assert.deepEqual(readFileSync(host), before);
  });

  test('bash tools get no packages: its root has no /opt/mcpworks', async () => {
    const r = await executor.execute(
      toolCall('bash', 'if [ -e /opt/mcpworks ]; then echo present; else echo absent; fi'),
    );
    assert.equal(text(r).trim(), 'absent');
  });
});

describe('a hostile packages directory', () => {
  let shadowing: SandboxExecutor;
  let dir: string;
  before(async () => {
    // A hostile packages directory: modules named like standard ones, which would run first if
    // the packages came before the standard library on the search path.
    dir = mkdtempSync(join(tmpdir(), 'packages-shadow-'));
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, 'python', 'json'), { recursive: true });
    writeFileSync(join(dir, 'python', 'json', '__init__.py'), 'raise RuntimeError("shadowed")\n');
    writeFileSync(join(dir, 'python', 'base64.py'), 'raise RuntimeError("shadowed")\n');
    mkdirSync(join(dir, 'node', 'node_modules', 'fs'), { recursive: true });
    writeFileSync(
      join(dir, 'node', 'node_modules', 'fs', 'index.js'),
      'throw new Error("shadowed")',
    );
    // Symlinks out of the packages: kept as symlinks, so inside they name the jail's own paths.
    writeFileSync(join(dir, 'host-secret'), 'host secret');
    symlinkSync(join(dir, 'host-secret'), join(dir, 'python', 'secret.txt'));
    symlinkSync('/root', join(dir, 'python', 'home'));
    shadowing = await createSandboxExecutor({
      nsjailPath: nsjailForTests(),
      warmPoolSize: 0,
      packagesDir: dir,
    });
    await shadowing.probe();
  });
  after(async () => {
    await shadowing?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('python imports the standard json and base64', async () => {
    const r = await shadowing.execute(
      toolCall(
        'python',
        'import json, base64\ndef main(args):\n    return json.loads(json.dumps(base64.b64encode(b"ok").decode()))\n',
      ),
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.equal(text(r), 'b2s=');
  });

  test('symlinks in the packages reach nothing of the host', async () => {
    const r = await shadowing.execute(
      toolCall(
        'python',
        'import os\n' +
          'def main(args):\n' +
          '    out = {}\n' +
          '    for name in ["secret.txt", "home"]:\n' +
          '        path = "/opt/mcpworks/packages/python/" + name\n' +
          '        try:\n' +
          '            out[name] = open(path).read() if name == "secret.txt" else os.listdir(path)\n' +
          '        except OSError as e:\n' +
          '            out[name] = type(e).__name__\n' +
          '    return out\n',
      ),
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.deepEqual(JSON.parse(text(r)), {
      'secret.txt': 'FileNotFoundError',
      home: 'FileNotFoundError',
    });
  });

  test("node's require('fs') is the built-in", async () => {
    const r = await shadowing.execute(
      toolCall('node', "function main() { return typeof require('fs').readFileSync; }"),
    );
    assert.equal(r.outcome, 'ok', text(r));
    assert.equal(text(r), 'function');
  });
});

describe('without packages', () => {
  test('the roots are unchanged and an import names the missing package', async (t) => {
    const plain = await createSandboxExecutor({ nsjailPath: nsjailForTests(), warmPoolSize: 0 });
    t.after(() => plain.close());
    await plain.probe();
    const r = await plain.execute(
      toolCall('python', 'import os\ndef main(args):\n    import idna\n'),
    );
    assert.match(
      r.message ?? '',
      /^ModuleNotFoundError: No module named 'idna': the executor image does not carry .*\(line 3\)$/,
    );
    const listing = await plain.execute(
      toolCall('python', 'import os\ndef main(args):\n    return os.path.exists("/opt")\n'),
    );
    assert.equal(text(listing), 'false');
  });

  test('a packages option naming no directory is refused at start', async () => {
    await assert.rejects(
      createSandboxExecutor({
        nsjailPath: nsjailForTests(),
        warmPoolSize: 0,
        packagesDir: join(tmpdir(), 'no-such-packages-dir'),
      }),
      (error: unknown) =>
        isMcpworksError(error) &&
        error.code === ErrorCode.SandboxUnavailable &&
        /packages directory .*no-such-packages-dir does not exist/.test(error.message),
    );
  });
});

describe('prepared roots with packages', () => {
  /** Prepared roots and a copy of the packages, as in the image: one filesystem, traversable. */
  function imageLike(): { roots: string; packagesDir: string; cleanup(): void } {
    const dir = mkdtempSync(join(tmpdir(), 'prepared-packages-test-'));
    chmodSync(dir, 0o755);
    const packagesDir = join(dir, 'packages');
    cpSync(packages, packagesDir, { recursive: true });
    return {
      roots: join(dir, 'roots'),
      packagesDir,
      cleanup: () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const refusal = (pattern: RegExp) => (error: unknown) =>
    isMcpworksError(error) &&
    error.code === ErrorCode.SandboxUnavailable &&
    pattern.test(error.message);

  test('pass the start-up check and serve the packages', async (t) => {
    const image = imageLike();
    t.after(image.cleanup);
    await prepareRuntimeRoots(image.roots, undefined, image.packagesDir);
    const prepared = await createSandboxExecutor({
      nsjailPath: nsjailForTests(),
      warmPoolSize: 0,
      runtimeRoots: image.roots,
      packagesDir: image.packagesDir,
    });
    t.after(() => prepared.close());
    await prepared.probe();
    const r = await prepared.execute(
      toolCall('node', "function main() { return require('ms')(1500, { long: true }); }"),
    );
    assert.equal(text(r), '2 seconds');
  });

  test('are refused when the packages changed after they were prepared', async (t) => {
    const image = imageLike();
    t.after(image.cleanup);
    await prepareRuntimeRoots(image.roots, undefined, image.packagesDir);
    writeFileSync(join(image.packagesDir, 'python', 'idna', 'added.py'), 'x = 1\n');
    await assert.rejects(
      createSandboxExecutor({
        nsjailPath: nsjailForTests(),
        warmPoolSize: 0,
        runtimeRoots: image.roots,
        packagesDir: image.packagesDir,
      }),
      refusal(
        /prepared python root .* is refused: \/opt\/mcpworks\/packages\/python\/idna\/added\.py is missing/,
      ),
    );
  });

  test('are refused when prepared without the packages the executor is given, and the reverse', async (t) => {
    const image = imageLike();
    t.after(image.cleanup);
    await prepareRuntimeRoots(image.roots);
    await assert.rejects(
      createSandboxExecutor({
        nsjailPath: nsjailForTests(),
        warmPoolSize: 0,
        runtimeRoots: image.roots,
        packagesDir: image.packagesDir,
      }),
      refusal(/prepared python root .* is refused: \/opt is missing/),
    );
    rmSync(image.roots, { recursive: true, force: true });
    await prepareRuntimeRoots(image.roots, undefined, image.packagesDir);
    await assert.rejects(
      createSandboxExecutor({
        nsjailPath: nsjailForTests(),
        warmPoolSize: 0,
        runtimeRoots: image.roots,
      }),
      refusal(/prepared python root .* is refused: \/opt is not part of the runtime/),
    );
  });
});
