import { generateKeyPair as generateRsa, sign } from 'node:crypto';
import { promisify } from 'node:util';
import forge from 'node-forge';
import type { MoodleAccess } from './access.ts';
import { storeSetting } from './config.ts';
import type { CacheChange } from './muc.ts';
import { phpSerialize, phpUnserialize } from './php-values.ts';
import type { Statements } from './statements.ts';
import { MOODLE_TABLES } from './tables.ts';
import { type MoodleTarget, TargetError } from './target.ts';

const rsa = promisify(generateRsa);

/** What Moodle stores between the certificate and the private key in `mnet`/`openssl` (moodle-facts §2.4). */
const SEPARATOR = '@@@@@@@@';

/** `$CFG->mnetkeylifetime`'s default: a key lasts 28 days. */
export const DEFAULT_KEY_DAYS = 28;

/** What a site's key says of it, and what its certificate's subject is made from. */
export interface KeySubject {
  wwwroot: string;
  /** The site course's full name (get_site()->fullname). */
  fullname: string;
  /** The admin the key is made as: their email, country and city, as mnet_generate_keypair() reads $USER. */
  email: string;
  country: string;
  city: string;
}

export interface KeyPair {
  certificate: string;
  keypairPem: string;
  /** The certificate's validTo, unix seconds. */
  expires: number;
}

/** core_text::substr: a cut by characters, not bytes. */
const cut = (text: string, length: number) => Array.from(text).slice(0, length).join('');

/**
 * mnet_generate_keypair(): an RSA 2048 key pair and a self-signed certificate whose subject is Moodle's DN, with its
 * limits: C (2) = the admin's country or NZ, ST and L (128) = their city or Wellington, O (64) = the site's full name,
 * OU = Moodle, CN (64) = the wwwroot without a trailing slash, subjectAltName = the wwwroot as an attribute of the
 * subject (OID 2.5.29.17, which `mnet_peer::check_credentials` reads there), emailAddress (128).
 */
export async function generateKeyPair(subject: KeySubject, days: number, now = Date.now()): Promise<KeyPair> {
  const { privateKey, publicKey } = await rsa('rsa', { modulusLength: 2048 });
  const keypairPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = '00';
  cert.validity.notBefore = new Date(Math.floor(now / 1000) * 1000);
  cert.validity.notAfter = new Date(Math.floor(now / 1000) * 1000 + days * 86_400_000);
  const utf8 = forge.asn1.Type.UTF8;
  const dn = [
    { name: 'countryName', value: cut(subject.country || 'NZ', 2), valueTagClass: forge.asn1.Type.PRINTABLESTRING },
    { name: 'stateOrProvinceName', value: cut(subject.city || 'Wellington', 128), valueTagClass: utf8 },
    { name: 'localityName', value: cut(subject.city || 'Wellington', 128), valueTagClass: utf8 },
    { name: 'organizationName', value: cut(subject.fullname, 64), valueTagClass: utf8 },
    { name: 'organizationalUnitName', value: 'Moodle', valueTagClass: utf8 },
    { name: 'commonName', value: cut(subject.wwwroot, 64).replace(/\/$/, ''), valueTagClass: utf8 },
    { type: '2.5.29.17', value: subject.wwwroot, valueTagClass: utf8 },
    { name: 'emailAddress', value: cut(subject.email, 128), valueTagClass: forge.asn1.Type.IA5STRING },
  ] as unknown as forge.pki.CertificateField[];
  cert.setSubject(dn);
  cert.setIssuer(dn);
  // forge lays the certificate out; Node signs it (RSA in JavaScript would be most of a renewal's time).
  cert.signatureOid = forge.pki.oids.sha256WithRSAEncryption as string;
  cert.siginfo.algorithmOid = cert.signatureOid;
  cert.tbsCertificate = (
    forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }
  ).getTBSCertificate(cert);
  const tbs = Buffer.from(forge.asn1.toDer(cert.tbsCertificate).getBytes(), 'binary');
  cert.signature = sign('sha256', tbs, privateKey).toString('binary');
  // PHP's openssl_x509_export() writes \n line ends.
  const certificate = forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n');
  return { certificate, keypairPem, expires: Math.floor(cert.validity.notAfter.getTime() / 1000) };
}

/** A key's state as the status shows it. */
export type KeyState = 'valid' | 'expiring' | 'expired' | 'unset';

export function keyState(expires: number, gapHours: number, now = Date.now()): KeyState {
  if (!expires) return 'unset';
  if (expires * 1000 <= now) return 'expired';
  return expires * 1000 - now <= gapHours * 3_600_000 ? 'expiring' : 'valid';
}

/** A site's MNET as the product reads it: its own key, its local row, its peers. */
export interface MnetSite {
  /** mnet_dispatcher_mode: off (also when unset), strict or dangerous. */
  mode: string;
  /** Its row's value, null when the site has none. */
  modeSetting: string | null;
  localId: number;
  allHostsId: number;
  local: { id: number; wwwroot: string; public_key: string; public_key_expires: number } | undefined;
  /** `mnet`/`openssl`, `openssl_history`, `openssl_generations`, as stored (null: no row). */
  openssl: string | null;
  history: string | null;
  generations: string | null;
  /** Known peers: not deleted, neither this site nor All Hosts. */
  peers: Array<{ id: number; wwwroot: string; public_key: string }>;
  subject: Omit<KeySubject, 'wwwroot'>;
  lifetimeDays: number;
}

export async function readMnet(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  lock: boolean,
): Promise<MnetSite> {
  const t = (name: string) => access.table(target, name);
  const forUpdate = lock ? ' FOR UPDATE' : '';
  const [config, plugins, hosts, site, admin] = await sql.readAll<
    [
      { name: string; value: string },
      { name: string; value: string },
      MnetSite['peers'][number] & { deleted: number; public_key_expires: number },
      { fullname: string },
      { email: string; country: string; city: string },
    ]
  >([
    [
      `SELECT name, value FROM ${t(MOODLE_TABLES.config)} WHERE name IN ('mnet_dispatcher_mode', 'mnet_localhost_id', 'mnet_all_hosts_id', 'mnetkeylifetime', 'noreplyaddress')`,
      [],
    ],
    [
      `SELECT name, value FROM ${t(MOODLE_TABLES.configPlugins)} WHERE plugin = 'mnet' AND name IN ('openssl', 'openssl_history', 'openssl_generations')${forUpdate}`,
      [],
    ],
    [
      `SELECT id, deleted, wwwroot, public_key, public_key_expires FROM ${t(MOODLE_TABLES.mnetHost)} ORDER BY id${forUpdate}`,
      [],
    ],
    [`SELECT fullname FROM ${t(MOODLE_TABLES.course)} WHERE id = 1`, []],
    [
      `SELECT email, country, city FROM ${t(MOODLE_TABLES.user)} WHERE deleted = 0 AND FIND_IN_SET(id, REPLACE((SELECT value FROM ${t(MOODLE_TABLES.config)} WHERE name = 'siteadmins'), ' ', '')) > 0
      ORDER BY FIND_IN_SET(id, REPLACE((SELECT value FROM ${t(MOODLE_TABLES.config)} WHERE name = 'siteadmins'), ' ', '')) LIMIT 1`,
      [],
    ],
  ]);
  const setting = (rows: Array<{ name: string; value: string }>, name: string) =>
    rows.find((r) => r.name === name)?.value ?? null;
  const localId = Number(setting(config, 'mnet_localhost_id') ?? 1);
  const allHostsId = Number(setting(config, 'mnet_all_hosts_id') ?? 2);
  const local = hosts.find((h) => Number(h.id) === localId);
  const who = admin[0];
  const noreply = setting(config, 'noreplyaddress');
  return {
    mode: setting(config, 'mnet_dispatcher_mode') ?? 'off',
    modeSetting: setting(config, 'mnet_dispatcher_mode'),
    localId,
    allHostsId,
    local: local && {
      id: Number(local.id),
      wwwroot: local.wwwroot,
      public_key: local.public_key,
      public_key_expires: Number(local.public_key_expires),
    },
    openssl: setting(plugins, 'openssl'),
    history: setting(plugins, 'openssl_history'),
    generations: setting(plugins, 'openssl_generations'),
    peers: hosts
      .filter((h) => !Number(h.deleted) && Number(h.id) !== localId && Number(h.id) !== allHostsId)
      .map((h) => ({ id: Number(h.id), wwwroot: h.wwwroot, public_key: h.public_key })),
    subject: {
      fullname: site[0]?.fullname ?? '',
      email: who?.email || noreply || `noreply@${new URL(target.host.wwwroot).host}`,
      country: who?.country ?? '',
      city: who?.city ?? '',
    },
    lifetimeDays:
      Number(setting(config, 'mnetkeylifetime')) > 0 ? Number(setting(config, 'mnetkeylifetime')) : DEFAULT_KEY_DAYS,
  };
}

/**
 * Replaces a site's key pair as get_keypair() rotates an expired one, then replace_keys(): the current pair archived
 * first in `openssl_history` (PHP serialize, `{certificate, keypair_PEM, expires}` newest first, at most
 * `openssl_generations`, 3 when unset), the new `openssl`, and the local `mnet_host` row's wwwroot, key and expiry.
 * Queued in the caller's transaction; the caches to invalidate.
 */
export function writeKeyPair(
  access: MoodleAccess,
  sql: Statements,
  target: MoodleTarget,
  site: MnetSite,
  pair: KeyPair,
): CacheChange[] {
  if (!site.local)
    throw new TargetError(
      `${target.host.shortname} has no mnet_host row ${site.localId} for itself (mnet_localhost_id)`,
    );
  const ref = (name: string) => ({ plugin: 'mnet', name });
  const noStores = { enabledStores: null, jsonformat: null };
  const history: unknown[] = site.history ? Object.values((phpUnserialize(site.history) ?? {}) as object) : [];
  const generations = Number(site.generations) > 0 ? Number(site.generations) : 3;
  if (!(Number(site.generations) > 0))
    storeSetting(access, sql, target, ref('openssl_generations'), '3', site.generations, noStores);
  if (site.openssl) {
    const [certificate, keypairPem] = site.openssl.split(SEPARATOR);
    history.unshift({ certificate, keypair_PEM: keypairPem, expires: String(site.local.public_key_expires) });
  }
  storeSetting(
    access,
    sql,
    target,
    ref('openssl_history'),
    phpSerialize(history.slice(0, generations)),
    site.history,
    noStores,
  );
  storeSetting(
    access,
    sql,
    target,
    ref('openssl'),
    `${pair.certificate}${SEPARATOR}${pair.keypairPem}`,
    site.openssl,
    noStores,
  );
  sql.write(
    `UPDATE ${access.table(target, MOODLE_TABLES.mnetHost)} SET wwwroot = ?, public_key = ?, public_key_expires = ? WHERE id = ?`,
    [target.host.wwwroot, pair.certificate, pair.expires, site.local.id],
  );
  return [{ definition: 'core/config', keys: ['mnet'] }];
}

/** A peer's copy of a site's key, updated where it is not deleted: how many rows held it. */
export async function writePeerKey(
  access: MoodleAccess,
  peer: MoodleTarget,
  wwwroot: string,
  pair: Pick<KeyPair, 'certificate' | 'expires'>,
): Promise<number> {
  return access.withConnection(peer, async (conn) => {
    const [result] = await conn.query(
      `UPDATE ${access.table(peer, MOODLE_TABLES.mnetHost)} SET public_key = ?, public_key_expires = ? WHERE wwwroot = ? AND deleted = 0`,
      [pair.certificate, pair.expires, wwwroot],
    );
    return Number((result as { affectedRows: number }).affectedRows);
  });
}

/** What a peer holds of a site's key: its certificate text, or undefined when it has no live row for that wwwroot. */
export async function peerCopy(access: MoodleAccess, peer: MoodleTarget, wwwroot: string): Promise<string | undefined> {
  return access.withConnection(peer, async (conn) => {
    const [rows] = await conn.query(
      `SELECT public_key FROM ${access.table(peer, MOODLE_TABLES.mnetHost)} WHERE wwwroot = ? AND deleted = 0 LIMIT 1`,
      [wwwroot],
    );
    return (rows as Array<{ public_key: string }>)[0]?.public_key;
  });
}
