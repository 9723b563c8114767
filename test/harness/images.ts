// The project's two images, built from its own Dockerfiles (./Dockerfile, sandbox-image/Dockerfile)
// with buildah, without a registry or a Docker engine, as docker-archive tars that a node imports
// with `ctr -n k8s.io images import <tar>`. Cached under <cache>/images: the base by Debian
// release + Node version, each image by a hash of its build inputs, so an unchanged tree builds
// nothing and a code change rebuilds.
//
//   node test/harness/images.ts            build what is missing; print refs, tars and timings
//   node test/harness/images.ts --json     the same as JSON on stdout
//   node test/harness/images.ts --packages also the example executor image with packages
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { Buildah, mustRun, type CommandResult, type ImageConfig } from './buildah.ts';
import {
  BASE_APT_SOURCES,
  debianSourcesText,
  ensureBaseImage,
  type BaseImage,
} from './image-base.ts';
import { readImagePins } from './image-pins.ts';
import { runPrivileged } from './runc.ts';
import { cacheDir, repoRoot } from './paths.ts';

/** Bump when how the images are built changes (mounts, flags): the cache keys include it. */
const BUILD_RECIPE = 1;
const HOST_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export type ImageName = 'operator' | 'sandbox';

/**
 * The example executor image with packages (sandbox-image/packages/Dockerfile), built FROM the
 * sandbox image; not one the chart deploys by default (an McpServer names it).
 */
export const PACKAGES_IMAGE = {
  dockerfile: 'sandbox-image/packages/Dockerfile',
  contextDir: 'sandbox-image/packages',
  ref: 'docker.io/mcpworks/sandbox-packages:0.1.0',
} as const;

/**
 * An executor image that trusts the egress world's test CA (test/fixtures/egress-world), built
 * FROM another executor image: what the real-node tests deploy for tools with egress.
 */
export const WORLD_CA_IMAGE = {
  dockerfile: 'test/fixtures/egress-world/executor.Dockerfile',
  contextDir: 'test/fixtures/egress-world',
  /** The context files the Dockerfile uses (the cache key's inputs besides the Dockerfile). */
  inputs: ['test/fixtures/egress-world/ca.crt'],
  ref: 'docker.io/mcpworks/sandbox-world-ca:0.1.0',
} as const;

export interface ImageSpec {
  name: ImageName;
  /** Relative to the repository root. */
  dockerfile: string;
  /** Fully qualified, as containerd names it after `ctr images import` (docker.io/...). */
  ref: string;
  /** Build inputs besides the Dockerfile, relative to the repository root (files or folders). */
  inputs: string[];
}

export interface ProjectImage {
  name: ImageName | 'packages' | 'world-ca';
  ref: string;
  tar: string;
  key: string;
  built: boolean;
  seconds: number;
  bytes: number;
}

export interface ProjectImages {
  base: BaseImage;
  operator: ProjectImage;
  sandbox: ProjectImage;
}

export function imagesDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), 'images');
}

/**
 * `name[:tag]` as a container runtime resolves it: without a registry host the name is Docker
 * Hub's (`docker.io/`, and `library/` for one-component names), which is how kubelet and
 * `ctr images import` name an image that a pod spec calls `mcpworks/mcpworks:0.1.0`.
 */
export function qualifiedRef(ref: string): string {
  const [first, ...rest] = ref.split('/');
  const hasHost =
    rest.length > 0 && (first!.includes('.') || first!.includes(':') || first === 'localhost');
  if (hasHost) return ref;
  return rest.length === 0 ? `docker.io/library/${ref}` : `docker.io/${ref}`;
}

/** The refs the chart deploys by default: its operator image and its executor image. */
export function chartDefaultRefs(root: string = repoRoot): { operator: string; sandbox: string } {
  const chartDir = join(root, 'charts', 'mcpworks');
  const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) as {
    image: { registry: string; repository: string; tag: string };
    workloadImages: { executor: string };
  };
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as {
    appVersion: string;
  };
  const host = values.image.registry ? `${values.image.registry}/` : '';
  return {
    operator: `${host}${values.image.repository}:${values.image.tag || chart.appVersion}`,
    sandbox: values.workloadImages.executor,
  };
}

export function imageSpecs(root: string = repoRoot): Record<ImageName, ImageSpec> {
  const refs = chartDefaultRefs(root);
  // What the Dockerfiles COPY (see .dockerignore), plus the files that shape the build itself.
  const common = [
    '.dockerignore',
    'package.json',
    'package-lock.json',
    'tsconfig.json',
    'tsconfig.build.json',
    'src',
    'crds',
  ];
  return {
    operator: {
      name: 'operator',
      dockerfile: 'Dockerfile',
      ref: qualifiedRef(refs.operator),
      inputs: common,
    },
    sandbox: {
      name: 'sandbox',
      dockerfile: 'sandbox-image/Dockerfile',
      ref: qualifiedRef(refs.sandbox),
      // what .dockerignore lets it COPY from sandbox-image/ (not the packages example, which
      // builds FROM this image)
      inputs: [
        ...common,
        'sandbox-image/Dockerfile',
        'sandbox-image/seccomp.kafel',
        'sandbox-image/runtimes.env',
      ],
    },
  };
}

function listFiles(root: string, path: string): string[] {
  const full = join(root, path);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full)
    .sort()
    .flatMap((entry) => listFiles(root, join(path, entry)));
}

/**
 * A hash of everything that goes into one image: its Dockerfile, its inputs' paths and bytes
 * (test files excluded, as .dockerignore excludes them), the base image and the build recipe.
 */
export function imageInputsKey(spec: ImageSpec, baseKey: string, root: string = repoRoot): string {
  const hash = createHash('sha256');
  hash.update(`recipe ${BUILD_RECIPE}\nbase ${baseKey}\n`);
  const files = [spec.dockerfile, ...spec.inputs.flatMap((input) => listFiles(root, input))].filter(
    (file) => !file.endsWith('.test.ts'),
  );
  for (const file of [...new Set(files)].sort()) {
    hash.update(`${file}\0`);
    hash.update(readFileSync(join(root, file)));
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

/**
 * Bind mounts for every RUN step of a build, which leave nothing in any layer: buildah creates a
 * missing mount target in the layer (an empty file), so only paths the base already has are
 * mounted over. `/root` (HOME of the RUN steps) becomes a build home on this machine holding a
 * copy of its CA bundle and npm and pip settings that trust it (npm's cache lands there too);
 * the base's apt sources file is overlaid with one that relaxes the Release date checks when
 * this machine's apt does (a snapshot mirror). The Dockerfiles stay as a Docker user builds them.
 */
export function buildMounts(dir: string, release: string): string[] {
  const home = join(dir, 'home');
  mkdirSync(join(home, '.config', 'pip'), { recursive: true });
  const ca = '/root/.build-ca-certificates.crt';
  copyFileSync(HOST_CA_BUNDLE, join(home, basename(ca)));
  writeFileSync(
    join(home, '.npmrc'),
    `cafile=${ca}\nupdate-notifier=false\nfund=false\naudit=false\n`,
  );
  writeFileSync(join(home, '.config', 'pip', 'pip.conf'), `[global]\ncert = ${ca}\n`);
  const sources = join(dir, 'debian.sources');
  writeFileSync(
    sources,
    debianSourcesText(release, { relaxReleaseChecks: hostRelaxesReleaseChecks() }),
  );
  return [`${home}:/root`, `${sources}:${BASE_APT_SOURCES}:ro`];
}

/** True when this machine's apt skips the Release files' Valid-Until / Date checks. */
export function hostRelaxesReleaseChecks(
  dump = execFileSync('apt-config', ['dump'], { encoding: 'utf8' }),
): boolean {
  return /^Acquire::Check-Valid-Until "(false|no|0)";$/m.test(dump);
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** Serializes builds across processes (a test and a node harness may both ask). */
async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, 'pid'), String(process.pid));
      break;
    } catch {
      let holder = 0;
      try {
        holder = Number(readFileSync(join(path, 'pid'), 'utf8'));
      } catch {
        // being created or removed
      }
      let alive = holder > 0;
      if (alive) {
        try {
          process.kill(holder, 0);
        } catch {
          alive = false;
        }
      }
      // A dead holder, or one that died between creating the lock and naming itself.
      const orphaned = holder === 0 && ageMs(path) > 10_000;
      if ((holder > 0 && !alive) || orphaned) rmSync(path, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { recursive: true, force: true });
  }
}

/** `apt-get install` what the build needs when this machine lacks it (CI machines start bare). */
async function ensureBuildTools(logPath: string): Promise<void> {
  const missing = ['buildah', 'debootstrap', 'runc'].filter((tool) => {
    try {
      execFileSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`], {
        stdio: 'ignore',
      });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length === 0) return;
  await mustRun('apt-get', ['update'], { logPath });
  await mustRun('apt-get', ['install', '-y', '--no-install-recommends', ...missing], {
    logPath,
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

function openBuildah(env: NodeJS.ProcessEnv = process.env, logName = 'buildah.log'): Buildah {
  const dir = imagesDir(env);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  return new Buildah(join(dir, 'storage'), join(dir, 'logs', logName));
}

/** How one image is built: its inputs' key, its context and its build arguments. */
interface ImageBuild {
  key: string;
  contextDir: string;
  buildArgs: Record<string, string>;
}

async function ensureImage(
  buildah: Buildah,
  spec: Pick<ImageSpec, 'dockerfile' | 'ref'> & { name: ProjectImage['name'] },
  build: ImageBuild,
  dir: string,
  mounts: readonly string[],
  log: (line: string) => void,
): Promise<ProjectImage> {
  const key = build.key;
  const tar = join(dir, `${spec.name}-${key}.tar`);
  const started = Date.now();
  let built = false;
  if (!existsSync(tar)) {
    log(`images: building ${spec.ref} from ${spec.dockerfile} (inputs ${key})`);
    await buildah.buildDockerfile({
      contextDir: build.contextDir,
      dockerfile: join(repoRoot, spec.dockerfile),
      ref: spec.ref,
      buildArgs: build.buildArgs,
      volumes: mounts,
    });
    const partial = `${tar}.partial`;
    rmSync(partial, { force: true });
    await buildah.pushDockerArchive(spec.ref, partial);
    renameSync(partial, tar);
    // One tar per image: older ones are superseded.
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith(`${spec.name}-`) && entry.endsWith('.tar') && join(dir, entry) !== tar) {
        rmSync(join(dir, entry), { force: true });
      }
    }
    built = true;
  } else if (
    !(await buildah.hasImage(spec.ref)) ||
    !(await tarMatchesStore(buildah, spec.ref, tar))
  ) {
    // The tar is the cache; the store (used to inspect and run the image) is refilled from it.
    await buildah.run(['pull', '--signature-policy', buildah.policyPath, `docker-archive:${tar}`]);
    await buildah.run(['tag', await imageIdInTar(tar), spec.ref]);
  }
  const seconds = (Date.now() - started) / 1000;
  const bytes = statSync(tar).size;
  log(
    `images: ${spec.ref} ${built ? `built in ${seconds.toFixed(1)} s` : 'up to date'}: ${tar} (${(bytes / 1e6).toFixed(0)} MB)`,
  );
  return { name: spec.name, ref: spec.ref, tar, key, built, seconds, bytes };
}

/** The image id (config digest) of the one image in a docker-archive tar. */
async function imageIdInTar(tar: string): Promise<string> {
  const manifest = JSON.parse(await mustRun('tar', ['-xOf', tar, 'manifest.json'])) as [
    { Config: string },
  ];
  return manifest[0].Config.replace(/^(sha256:)?/, '').replace(/\.json$/, '');
}

async function tarMatchesStore(buildah: Buildah, ref: string, tar: string): Promise<boolean> {
  const inTar = await imageIdInTar(tar);
  return (await buildah.imageId(ref)).endsWith(inTar);
}

/**
 * Builds (or finds in the cache) the operator and sandbox images from the project's own
 * Dockerfiles on a local stand-in for their `node:<version>-<release>-slim` base, and resolves
 * each image's fully qualified ref and docker-archive tar.
 */
export async function ensureProjectImages(
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<ProjectImages> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const dir = imagesDir(env);
  mkdirSync(join(dir, 'logs'), { recursive: true });
  return withLock(join(dir, 'lock'), async () => {
    const logPath = join(dir, 'logs', 'build.log');
    await ensureBuildTools(logPath);
    const buildah = openBuildah(env, 'build.log');
    const pins = readImagePins();
    const base = await ensureBaseImage(buildah, pins, dir, logPath);
    log(
      `images: base ${base.ref} ${base.built ? `built in ${base.seconds.toFixed(1)} s` : 'up to date'}`,
    );
    const specs = imageSpecs();
    const mounts = buildMounts(join(dir, 'build-mounts'), pins.debianRelease);
    const fromRoot = (spec: ImageSpec): ImageBuild => ({
      key: imageInputsKey(spec, base.key),
      contextDir: repoRoot,
      buildArgs: { NODE_IMAGE: base.ref },
    });
    const operator = await ensureImage(
      buildah,
      specs.operator,
      fromRoot(specs.operator),
      dir,
      mounts,
      log,
    );
    const sandbox = await ensureImage(
      buildah,
      specs.sandbox,
      fromRoot(specs.sandbox),
      dir,
      mounts,
      log,
    );
    // Working containers of failed builds, and layers no tag needs any more.
    await buildah.run(['rm', '--all']);
    await buildah.run(['rmi', '--prune']);
    return { base, operator, sandbox };
  });
}

/**
 * The example executor image with packages, built (or found in the cache) FROM the sandbox image
 * of `images` with the example's pinned packages; its key follows the sandbox image's and the
 * example directory's bytes, so a code change rebuilds it too.
 */
export async function ensurePackagesImage(
  images: ProjectImages,
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<ProjectImage> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const dir = imagesDir(env);
  return withLock(join(dir, 'lock'), async () => {
    const buildah = openBuildah(env, 'build.log');
    const pins = readImagePins();
    const hash = createHash('sha256');
    hash.update(`recipe ${BUILD_RECIPE}\nsandbox ${images.sandbox.key}\n`);
    for (const file of listFiles(repoRoot, PACKAGES_IMAGE.contextDir)) {
      hash.update(`${file}\0`);
      hash.update(readFileSync(join(repoRoot, file)));
    }
    // The sandbox image is the base: in the store under its ref (ensureProjectImages put it there).
    if (!(await buildah.hasImage(images.sandbox.ref)))
      throw new Error(`${images.sandbox.ref} is not in the build store; run ensureProjectImages`);
    const image = await ensureImage(
      buildah,
      { name: 'packages', ...PACKAGES_IMAGE },
      {
        key: hash.digest('hex').slice(0, 16),
        contextDir: join(repoRoot, PACKAGES_IMAGE.contextDir),
        buildArgs: { SANDBOX_IMAGE: images.sandbox.ref, NODE_IMAGE: images.base.ref },
      },
      dir,
      buildMounts(join(dir, 'build-mounts'), pins.debianRelease),
      log,
    );
    await buildah.run(['rm', '--all']);
    return image;
  });
}

/**
 * The executor image `from` (the sandbox image or the packages image) with the egress world's
 * test CA added to its system bundle, built (or found in the cache) with the same tooling; its
 * key follows `from`'s and the Dockerfile's and CA's bytes.
 */
export async function ensureWorldCaImage(
  from: ProjectImage,
  options: { env?: NodeJS.ProcessEnv; log?: (line: string) => void } = {},
): Promise<ProjectImage> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const dir = imagesDir(env);
  return withLock(join(dir, 'lock'), async () => {
    const buildah = openBuildah(env, 'build.log');
    const pins = readImagePins();
    const hash = createHash('sha256');
    hash.update(`recipe ${BUILD_RECIPE}\nfrom ${from.ref} ${from.key}\n`);
    for (const file of [WORLD_CA_IMAGE.dockerfile, ...WORLD_CA_IMAGE.inputs]) {
      hash.update(`${file}\0`);
      hash.update(readFileSync(join(repoRoot, file)));
    }
    if (!(await buildah.hasImage(from.ref)))
      throw new Error(`${from.ref} is not in the build store; build it first`);
    const image = await ensureImage(
      buildah,
      { name: 'world-ca', dockerfile: WORLD_CA_IMAGE.dockerfile, ref: WORLD_CA_IMAGE.ref },
      {
        key: hash.digest('hex').slice(0, 16),
        contextDir: join(repoRoot, WORLD_CA_IMAGE.contextDir),
        buildArgs: { EXECUTOR_IMAGE: from.ref },
      },
      dir,
      buildMounts(join(dir, 'build-mounts'), pins.debianRelease),
      log,
    );
    await buildah.run(['rm', '--all']);
    return image;
  });
}

/** Runs `argv` in a container of a built image (`ref` from ensureProjectImages), as its USER. */
export function runInImage(
  ref: string,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<CommandResult> {
  return openBuildah(env).runInImage(ref, argv);
}

/** The image's OCI config: User, Env, Entrypoint, Cmd. */
export function imageConfig(
  ref: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ImageConfig> {
  return openBuildah(env).imageConfig(ref);
}

/** Runs `fn` on the root filesystem of a fresh container of `ref` (removed afterwards). */
export function withImageRootfs<T>(
  ref: string,
  fn: (rootfs: string) => Promise<T>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<T> {
  return openBuildah(env).withMountedImage(ref, fn);
}

/**
 * Runs `argv` as root with every capability in a fresh container of `ref` under runc (see
 * runc.ts): for what a chroot cannot do, such as nsjail creating its namespaces.
 */
export function runPrivilegedInImage(
  ref: string,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<CommandResult> {
  return withImageRootfs(
    ref,
    (rootfs) => runPrivileged(rootfs, argv, join(imagesDir(env), 'runc')),
    env,
  );
}

/**
 * The sandbox runtimes' versions inside an image: `node --version` and `python3 --version`,
 * without their prefixes ("24.21.0", "3.11.2").
 */
export async function imageRuntimeVersions(
  ref: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ node: string; python: string }> {
  const read = async (argv: string[], prefix: RegExp) => {
    const result = await runInImage(ref, argv, env);
    if (result.code !== 0)
      throw new Error(`${argv.join(' ')} in ${ref} exited ${result.code}: ${result.stderr}`);
    return `${result.stdout}${result.stderr}`.trim().replace(prefix, '');
  };
  return {
    node: await read(['node', '--version'], /^v/),
    python: await read(['python3', '--version'], /^Python /),
  };
}

async function main(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const started = Date.now();
  const images = await ensureProjectImages();
  const packages = argv.includes('--packages') ? await ensurePackagesImage(images) : undefined;
  if (json) {
    console.log(JSON.stringify(packages ? { ...images, packages } : images, null, 2));
  } else {
    for (const image of [images.operator, images.sandbox, ...(packages ? [packages] : [])])
      console.log(`${image.ref}\t${image.tar}`);
    process.stderr.write(`images: ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  }
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`images: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
