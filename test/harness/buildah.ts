// buildah, daemonless and with its storage under the harness cache: builds images from Dockerfiles
// (`bud --isolation chroot`), commits root filesystems, runs commands in images and writes
// docker-archive tars for `ctr images import`. No registry is contacted: images come from the
// local store only.
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bin args` to completion and resolves its output; output is also appended to `logPath`
 * when given. Never rejects on a non-zero exit (see `mustRun`).
 */
export function runCommand(
  bin: string,
  args: readonly string[],
  options: { logPath?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const log = (chunk: Buffer) => {
      if (options.logPath) appendFileSync(options.logPath, chunk);
    };
    child.stdout.on('data', (chunk: Buffer) => {
      out.push(chunk);
      log(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err.push(chunk);
      log(chunk);
    });
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
  });
}

/** `runCommand` that rejects, with the command and the end of its output, unless it exits 0. */
export async function mustRun(
  bin: string,
  args: readonly string[],
  options: { logPath?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<string> {
  if (options.logPath) appendFileSync(options.logPath, `\n$ ${bin} ${args.join(' ')}\n`);
  const result = await runCommand(bin, args, options);
  if (result.code !== 0) {
    const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-25).join('\n');
    const where = options.logPath ? ` (log: ${options.logPath})` : '';
    throw new Error(`${bin} ${args.join(' ')} exited ${result.code}${where}:\n${output}`);
  }
  return result.stdout;
}

export interface ImageConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
}

/** A buildah whose image store lives in `storageDir` instead of /var/lib/containers. */
export class Buildah {
  private readonly globalArgs: string[];
  readonly storageDir: string;
  readonly logPath: string | undefined;
  readonly policyPath: string;

  constructor(storageDir: string, logPath?: string) {
    this.storageDir = storageDir;
    this.logPath = logPath;
    mkdirSync(storageDir, { recursive: true });
    // Only local transports are used (containers-storage, docker-archive), so accept anything:
    // there is no registry whose signatures could be checked.
    this.policyPath = join(storageDir, 'policy.json');
    writeFileSync(
      this.policyPath,
      JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }),
    );
    // The run root holds mount counts and locks that a reboot makes stale (it is meant for a
    // tmpfs); start it afresh after each boot.
    const runroot = join(storageDir, 'runroot');
    const bootIdFile = join(storageDir, 'boot-id');
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    if (!existsSync(bootIdFile) || readFileSync(bootIdFile, 'utf8').trim() !== bootId) {
      rmSync(runroot, { recursive: true, force: true });
      writeFileSync(bootIdFile, bootId);
    }
    this.globalArgs = [
      '--root',
      join(storageDir, 'root'),
      '--runroot',
      runroot,
      '--storage-driver',
      'overlay',
    ];
  }

  run(args: readonly string[]): Promise<string> {
    return mustRun('buildah', [...this.globalArgs, ...args], { logPath: this.logPath });
  }

  /** buildah's output without logging it (for values read back, such as a mount path). */
  async query(args: readonly string[]): Promise<string> {
    return (await mustRun('buildah', [...this.globalArgs, ...args])).trim();
  }

  async hasImage(ref: string): Promise<boolean> {
    const result = await runCommand('buildah', [
      ...this.globalArgs,
      'inspect',
      '--type',
      'image',
      '--format',
      '{{.FromImageID}}',
      ref,
    ]);
    return result.code === 0;
  }

  async imageId(ref: string): Promise<string> {
    return this.query(['inspect', '--type', 'image', '--format', '{{.FromImageID}}', ref]);
  }

  /** The image's OCI config (User, Env, Entrypoint, Cmd, ...). */
  async imageConfig(ref: string): Promise<ImageConfig> {
    const out = await this.query(['inspect', '--type', 'image', ref]);
    return (JSON.parse(out) as { OCIv1: { config?: ImageConfig } }).OCIv1.config ?? {};
  }

  /** `buildah bud` of `dockerfile` in `contextDir`, tagged `ref`; local base images only. */
  async buildDockerfile(options: {
    contextDir: string;
    dockerfile: string;
    ref: string;
    buildArgs: Record<string, string>;
    volumes: readonly string[];
  }): Promise<void> {
    const args = [
      'bud',
      '--isolation',
      'chroot',
      '--network',
      'host',
      '--pull=never',
      '--layers',
      '--format',
      'docker',
      '--signature-policy',
      this.policyPath,
      ...Object.entries(options.buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
      ...options.volumes.flatMap((v) => ['--volume', v]),
      '-f',
      options.dockerfile,
      '-t',
      options.ref,
      options.contextDir,
    ];
    await mustRun('buildah', [...this.globalArgs, ...args], {
      logPath: this.logPath,
      cwd: options.contextDir,
    });
  }

  /** Writes `ref` as a docker-archive tar whose manifest names `ref` (what `ctr` imports as). */
  async pushDockerArchive(ref: string, tarPath: string): Promise<void> {
    await this.run([
      'push',
      '--signature-policy',
      this.policyPath,
      ref,
      `docker-archive:${tarPath}:${ref}`,
    ]);
  }

  /** A fresh working container of the local image `ref` (never pulled); the caller removes it. */
  #workingContainer(ref: string): Promise<string> {
    return this.query(['from', '--pull=never', '--signature-policy', this.policyPath, ref]);
  }

  /**
   * Runs `fn` with the root filesystem of a fresh working container of `ref` mounted at the path
   * it is given; the container is removed afterwards, also when `fn` throws.
   */
  async withMountedImage<T>(ref: string, fn: (rootfs: string) => Promise<T>): Promise<T> {
    const container = await this.#workingContainer(ref);
    try {
      const rootfs = await this.query(['mount', container]);
      return await fn(rootfs);
    } finally {
      await this.run(['rm', container]);
    }
  }

  /**
   * Runs `argv` in a fresh container of `ref` as the image's USER (chroot isolation, host
   * network); resolves its output and exit code. The container is removed afterwards.
   */
  async runInImage(ref: string, argv: readonly string[]): Promise<CommandResult> {
    const container = await this.#workingContainer(ref);
    try {
      return await runCommand('buildah', [
        ...this.globalArgs,
        'run',
        '--isolation',
        'chroot',
        '--network',
        'host',
        container,
        '--',
        ...argv,
      ]);
    } finally {
      await this.run(['rm', container]);
    }
  }
}
