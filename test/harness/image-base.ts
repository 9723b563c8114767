// A local stand-in for the official `node:<version>-<release>-slim` image, for machines without a
// registry: a debootstrap minbase root of the Debian release (from this machine's own Debian
// mirror) plus the pinned Node binary and npm, laid out as the official image lays them out
// (/usr/local/bin/node, /usr/local/lib/node_modules/npm, npm and npx links, a `node` user 1000).
// The Dockerfiles take it through their NODE_IMAGE build argument.
import {
  appendFileSync,
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { arch } from 'node:os';
import { join } from 'node:path';
import { Buildah, mustRun } from './buildah.ts';
import type { ImagePins } from './image-pins.ts';

/** Bump when the recipe below changes what the base contains: the cache key includes it. */
const BASE_RECIPE = 1;
const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface BaseImage {
  ref: string;
  key: string;
  built: boolean;
  seconds: number;
}

export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  signedBy?: string;
}

/** The deb822 (`.sources`) and one-line (`.list`) entries apt reads, in apt's order. */
export function readAptSources(aptDir = '/etc/apt'): AptSource[] {
  const files: string[] = [];
  if (existsSync(join(aptDir, 'sources.list'))) files.push(join(aptDir, 'sources.list'));
  const dir = join(aptDir, 'sources.list.d');
  if (existsSync(dir)) {
    for (const name of readdirSync(dir).sort()) {
      if (name.endsWith('.list') || name.endsWith('.sources')) files.push(join(dir, name));
    }
  }
  return files.flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    return file.endsWith('.sources') ? parseDeb822Sources(text) : parseOneLineSources(text);
  });
}

export function parseDeb822Sources(text: string): AptSource[] {
  const stanzas = text
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n')
    .split(/\n\s*\n/);
  const sources: AptSource[] = [];
  for (const stanza of stanzas) {
    const fields: Record<string, string> = {};
    for (const line of stanza.split('\n')) {
      const match = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (match) fields[match[1]!.toLowerCase()] = match[2]!.trim();
    }
    if (!fields.uris || fields.enabled === 'no') continue;
    const list = (key: string) => (fields[key] ?? '').split(/\s+/).filter(Boolean);
    sources.push({
      types: list('types'),
      uris: list('uris'),
      suites: list('suites'),
      components: list('components'),
      signedBy: fields['signed-by'],
    });
  }
  return sources;
}

export function parseOneLineSources(text: string): AptSource[] {
  const sources: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const match = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!match) continue;
    const signedBy = /signed-by=(\S+)/.exec(match[2] ?? '')?.[1];
    sources.push({
      types: [match[1]!],
      uris: [match[3]!],
      suites: [match[4]!],
      components: match[5]!.split(/\s+/).filter(Boolean),
      signedBy,
    });
  }
  return sources;
}

/**
 * The Debian entries of `sources` for `release` (the release itself, -updates, -security), and
 * the mirror debootstrap should use: the first `deb` entry that serves the release itself.
 */
export function debianSourcesFor(
  sources: readonly AptSource[],
  release: string,
): { mirror: string; entries: AptSource[] } {
  const entries = sources.filter(
    (s) =>
      s.types.includes('deb') &&
      s.suites.length > 0 &&
      s.suites.every((suite) => suite === release || suite.startsWith(`${release}-`)) &&
      (s.signedBy === undefined || s.signedBy === DEBIAN_KEYRING),
  );
  const mirror = entries.find((s) => s.suites.includes(release))?.uris[0];
  if (!mirror) {
    throw new Error(
      `no apt source on this machine serves Debian ${release} (looked in /etc/apt/sources.list{,.d}): ` +
        'debootstrap needs a Debian mirror',
    );
  }
  return { mirror, entries };
}

/** Where the base keeps its apt sources (as the official Debian images do). */
export const BASE_APT_SOURCES = '/etc/apt/sources.list.d/debian.sources';

/**
 * The base's apt sources for `release`: this machine's Debian entries in deb822 form. With
 * `relaxReleaseChecks` (a build on a machine whose apt turns the checks off, as for a snapshot
 * mirror) the stanzas also skip the Release file's date checks.
 */
export function debianSourcesText(
  release: string,
  options: { relaxReleaseChecks?: boolean; aptDir?: string } = {},
): string {
  const { entries } = debianSourcesFor(readAptSources(options.aptDir), release);
  return entries
    .map((s) =>
      [
        `Types: ${s.types.join(' ')}`,
        `URIs: ${s.uris.join(' ')}`,
        `Suites: ${s.suites.join(' ')}`,
        `Components: ${s.components.join(' ')}`,
        ...(options.relaxReleaseChecks ? ['Check-Valid-Until: no', 'Check-Date: no'] : []),
        `Signed-By: ${DEBIAN_KEYRING}`,
      ].join('\n'),
    )
    .join('\n\n')
    .concat('\n');
}

/** The npm version a Node release bundles: the newest "upgrade npm to X" in its changelog. */
export function bundledNpmVersion(changelog: string, nodeVersion: string): string {
  const section = changelog.indexOf(`<a id="${nodeVersion}"></a>`);
  const match = /upgrade npm to (\d+\.\d+\.\d+)/.exec(
    section >= 0 ? changelog.slice(section) : changelog,
  );
  if (!match) throw new Error(`the changelog of Node ${nodeVersion} names no npm version`);
  return match[1]!;
}

export function baseImageKey(pins: ImagePins): string {
  return `${pins.debianRelease}-node${pins.nodeVersion}-r${BASE_RECIPE}`;
}

export function baseImageRef(pins: ImagePins): string {
  return `localhost/mcpworks/node-base:${baseImageKey(pins)}`;
}

function nodeArch(): string {
  const a = arch();
  if (a === 'x64' || a === 'arm64') return a;
  throw new Error(`no official Node binary for architecture ${a}`);
}

/** `npm pack <spec>` into `dir` and unpack it there; resolves the package directory. */
async function fetchNpmPackage(spec: string, dir: string, logPath: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const out = await mustRun(
    'npm',
    ['pack', spec, '--pack-destination', dir, '--json', '--loglevel=error'],
    { logPath, cwd: dir },
  );
  const [{ filename }] = JSON.parse(out) as [{ filename: string }];
  const unpacked = join(dir, filename.replace(/\.tgz$/, ''));
  mkdirSync(unpacked, { recursive: true });
  await mustRun(
    'tar',
    ['-xzf', join(dir, filename), '-C', unpacked, '--strip-components=1', '--no-same-owner'],
    {
      logPath,
    },
  );
  return unpacked;
}

/** Lays the official Node and npm packages into `rootfs/usr/local` as the official image does. */
async function installNode(
  rootfs: string,
  nodeVersion: string,
  workDir: string,
  logPath: string,
): Promise<void> {
  const nodePackage = await fetchNpmPackage(
    `node-linux-${nodeArch()}@${nodeVersion}`,
    join(workDir, 'node'),
    logPath,
  );
  const npmVersion = bundledNpmVersion(
    readFileSync(join(nodePackage, 'CHANGELOG.md'), 'utf8'),
    nodeVersion,
  );
  const npmPackage = await fetchNpmPackage(`npm@${npmVersion}`, join(workDir, 'npm'), logPath);
  const local = join(rootfs, 'usr', 'local');
  mkdirSync(join(local, 'bin'), { recursive: true });
  cpSync(join(nodePackage, 'bin', 'node'), join(local, 'bin', 'node'));
  chmodSync(join(local, 'bin', 'node'), 0o755);
  for (const dir of ['include', 'share']) {
    if (existsSync(join(nodePackage, dir)))
      cpSync(join(nodePackage, dir), join(local, dir), { recursive: true });
  }
  mkdirSync(join(local, 'lib', 'node_modules'), { recursive: true });
  cpSync(npmPackage, join(local, 'lib', 'node_modules', 'npm'), { recursive: true });
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(local, 'bin', 'npm'));
  symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(local, 'bin', 'npx'));
  appendFileSync(logPath, `\nbase: node ${nodeVersion}, npm ${npmVersion}\n`);
}

/** debootstrap minbase of `release`, cleaned of this machine's files, with Debian's sources. */
async function debootstrap(
  rootfs: string,
  release: string,
  debCache: string,
  logPath: string,
): Promise<void> {
  const { mirror } = debianSourcesFor(readAptSources(), release);
  mkdirSync(debCache, { recursive: true });
  await mustRun(
    'debootstrap',
    [
      '--variant=minbase',
      `--keyring=${DEBIAN_KEYRING}`,
      `--cache-dir=${debCache}`,
      release,
      rootfs,
      mirror,
    ],
    { logPath },
  );
  await mustRun('chroot', [rootfs, 'apt-get', 'clean'], { logPath });
  // debootstrap copies the host's resolver and host name; a container runtime provides both.
  for (const file of ['etc/resolv.conf', 'etc/hostname', 'etc/apt/sources.list'])
    rmSync(join(rootfs, file), { force: true });
  for (const dir of ['var/lib/apt/lists', 'var/log', 'var/cache/apt']) {
    for (const entry of readdirSync(join(rootfs, dir))) {
      if (entry !== 'partial' && entry !== 'archives')
        rmSync(join(rootfs, dir, entry), { recursive: true, force: true });
    }
  }
  writeFileSync(join(rootfs, BASE_APT_SOURCES), debianSourcesText(release));
  // The official image's user (uid/gid 1000), which some Dockerfiles expect.
  await mustRun('chroot', [rootfs, 'groupadd', '--gid', '1000', 'node'], { logPath });
  await mustRun(
    'chroot',
    [
      rootfs,
      'useradd',
      '--uid',
      '1000',
      '--gid',
      'node',
      '--shell',
      '/bin/bash',
      '--create-home',
      'node',
    ],
    {
      logPath,
    },
  );
}

/**
 * The base image in `buildah`'s store, built once per Debian release, Node version and recipe
 * (debootstrap's packages are kept in `workRoot` for rebuilds).
 */
export async function ensureBaseImage(
  buildah: Buildah,
  pins: ImagePins,
  workRoot: string,
  logPath: string,
): Promise<BaseImage> {
  const key = baseImageKey(pins);
  const ref = baseImageRef(pins);
  const started = Date.now();
  if (await buildah.hasImage(ref)) return { ref, key, built: false, seconds: 0 };
  const workDir = join(workRoot, `base-${key}.work`);
  rmSync(workDir, { recursive: true, force: true });
  const rootfs = join(workDir, 'rootfs');
  mkdirSync(rootfs, { recursive: true });
  try {
    await debootstrap(
      rootfs,
      pins.debianRelease,
      join(workRoot, 'debootstrap-cache', pins.debianRelease),
      logPath,
    );
    await installNode(rootfs, pins.nodeVersion, workDir, logPath);
    const container = await buildah.query(['from', 'scratch']);
    try {
      const mount = await buildah.query(['mount', container]);
      await mustRun('cp', ['-a', `${rootfs}/.`, mount], { logPath });
      await buildah.run([
        'config',
        '--os',
        'linux',
        '--arch',
        arch() === 'x64' ? 'amd64' : 'arm64',
        '--env',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '--env',
        `NODE_VERSION=${pins.nodeVersion}`,
        '--cmd',
        'node',
        '--label',
        `io.mcpworks.base=${key}`,
        container,
      ]);
      await buildah.run([
        'commit',
        '--format',
        'docker',
        '--signature-policy',
        buildah.policyPath,
        container,
        ref,
      ]);
    } finally {
      await buildah.run(['rm', container]);
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  return { ref, key, built: true, seconds: (Date.now() - started) / 1000 };
}
