// Test PKI for the control plane, made with the openssl CLI (node:crypto cannot issue X.509
// certificates). Short-lived ECDSA P-256 certificates; an RSA key signs ServiceAccount tokens.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface Pki {
  caCert: string;
  caKey: string;
  servingCert: string;
  servingKey: string;
  adminCert: string;
  adminKey: string;
  serviceAccountKey: string;
  serviceAccountPub: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args, { cwd: dir });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error('the openssl command is required by the test control plane', {
        cause: err,
      });
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

/**
 * `openssl req` arguments for a fresh P-256 key and a 7-day certificate `<out>.crt`/`<out>.key`,
 * self-signed unless `signedByCa`, carrying exactly `extensions`.
 */
const certArgs = (
  subj: string,
  out: string,
  extensions: string[],
  signedByCa: boolean,
): string[] => [
  'req',
  '-config',
  'openssl.cnf',
  '-x509',
  '-new',
  '-newkey',
  'ec',
  '-pkeyopt',
  'ec_paramgen_curve:P-256',
  '-nodes',
  '-days',
  '7',
  '-subj',
  subj,
  ...(signedByCa ? ['-CA', 'ca.crt', '-CAkey', 'ca.key'] : []),
  '-keyout',
  `${out}.key`,
  '-out',
  `${out}.crt`,
  ...extensions.flatMap((e) => ['-addext', e]),
];

const leafArgs = (subj: string, out: string, ext: string[]): string[] =>
  certArgs(
    subj,
    out,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      ...ext,
    ],
    true,
  );

/**
 * Writes into `dir` a CA (serving and client CA at once), the apiserver serving pair for
 * 127.0.0.1/localhost/kubernetes.default.svc (and `extraIps`), an admin client pair in group
 * system:masters and a ServiceAccount signing key pair; returns the PEM contents.
 */
export async function createPki(dir: string, extraIps: readonly string[] = []): Promise<Pki> {
  // No default extensions: every extension is added explicitly below.
  await writeFile(join(dir, 'openssl.cnf'), '[req]\ndistinguished_name=dn\n[dn]\n');
  await openssl(
    dir,
    certArgs(
      '/CN=mcpworks-test-ca',
      'ca',
      ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'],
      false,
    ),
  );
  const sans = [
    'IP:127.0.0.1',
    'IP:10.0.0.1',
    ...extraIps.map((ip) => `IP:${ip}`),
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
  ];
  await Promise.all([
    openssl(
      dir,
      leafArgs('/CN=kube-apiserver', 'apiserver', [
        'extendedKeyUsage=serverAuth',
        `subjectAltName=${sans.join(',')}`,
      ]),
    ),
    openssl(dir, leafArgs('/O=system:masters/CN=admin', 'admin', ['extendedKeyUsage=clientAuth'])),
    openssl(dir, [
      'genpkey',
      '-algorithm',
      'RSA',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-out',
      'sa.key',
    ]),
  ]);
  await openssl(dir, ['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
  const read = (f: string) => readFile(join(dir, f), 'utf8');
  const [caCert, caKey, servingCert, servingKey, adminCert, adminKey, saKey, saPub] =
    await Promise.all(
      [
        'ca.crt',
        'ca.key',
        'apiserver.crt',
        'apiserver.key',
        'admin.crt',
        'admin.key',
        'sa.key',
        'sa.pub',
      ].map(read),
    );
  return {
    caCert: caCert as string,
    caKey: caKey as string,
    servingCert: servingCert as string,
    servingKey: servingKey as string,
    adminCert: adminCert as string,
    adminKey: adminKey as string,
    serviceAccountKey: saKey as string,
    serviceAccountPub: saPub as string,
  };
}

/**
 * Issues `<out>.crt`/`<out>.key` in `dir` from the CA that createPki wrote there: a client
 * certificate for `subject` (e.g. `/O=system:nodes/CN=system:node:n1`), or with `servingIps` a
 * serving certificate for those addresses.
 */
export async function issueCertificate(
  dir: string,
  subject: string,
  out: string,
  servingIps: readonly string[] = [],
): Promise<{ certPath: string; keyPath: string }> {
  const ext =
    servingIps.length > 0
      ? [
          'extendedKeyUsage=serverAuth',
          `subjectAltName=${servingIps.map((ip) => `IP:${ip}`).join(',')}`,
        ]
      : ['extendedKeyUsage=clientAuth'];
  await openssl(dir, leafArgs(subject, out, ext));
  return { certPath: join(dir, `${out}.crt`), keyPath: join(dir, `${out}.key`) };
}
