// The versions the images are built from: sandbox-image/runtimes.env (the one pin file), with
// scripts/ensure-node.sh and the Dockerfiles' NODE_IMAGE default as the fallbacks they replace.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.ts';

export interface ImagePins {
  nodeVersion: string;
  /** The Debian release of the `node:<version>-<release>-slim` base. */
  debianRelease: string;
  /** Pinned python3 (upstream version), when the pin file names it. */
  pythonVersion?: string;
}

/** `KEY=VALUE` lines; `#` lines and blanks ignored (the pin file is data, never sourced). */
export function parseEnvFile(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(\S*)\s*$/.exec(line);
    if (match) values[match[1]!] = match[2]!;
  }
  return values;
}

/** The `ARG NODE_IMAGE=` default of a Dockerfile. */
export function nodeImageDefault(dockerfileText: string): string {
  const match = /^ARG NODE_IMAGE=(\S+)\s*$/m.exec(dockerfileText);
  if (!match) throw new Error('the Dockerfile has no `ARG NODE_IMAGE=<default>`');
  return match[1]!;
}

export function readImagePins(root: string = repoRoot): ImagePins {
  const pinFile = join(root, 'sandbox-image', 'runtimes.env');
  const pins = existsSync(pinFile) ? parseEnvFile(readFileSync(pinFile, 'utf8')) : {};
  const ensureNode = readFileSync(join(root, 'scripts', 'ensure-node.sh'), 'utf8');
  const nodeVersion = pins.NODE_VERSION ?? /^NODE_VERSION=(\S+)$/m.exec(ensureNode)?.[1];
  if (!nodeVersion) throw new Error(`no NODE_VERSION in ${pinFile} or scripts/ensure-node.sh`);
  const base = nodeImageDefault(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  const debianRelease = pins.DEBIAN_RELEASE ?? /-(\w+)-slim$/.exec(base)?.[1];
  if (!debianRelease) throw new Error(`cannot tell the Debian release of ${base}`);
  return { nodeVersion, debianRelease, pythonVersion: pins.PYTHON_VERSION };
}
