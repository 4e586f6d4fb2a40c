import { errorKind } from './errors.ts';
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';

/** One key of the keyring: an id that sealed values carry, and 32 bytes for AES-256-GCM and HMAC-SHA256. */
export interface SecretKey {
  id: string;
  key: Buffer;
}

export class KeyringError extends errorKind('config') {}

/** The mark of a value sealed at rest. */
const SEALED_AT_REST = 'sealed:';

/** Where an operator sets the keyring: named in every refusal that needs it. */
export const KEYRING_SETTING = 'VMOODLE_SECRET_KEYS (secrets.keys)';

/**
 * Keys for secrets at rest. A secret parameter waits for its run encrypted with AES-256-GCM under the first key;
 * older keys stay to open what they sealed, so a key is rotated by putting a new one first. Values that must be
 * compared later (a secret's old value, a plan with secrets) are kept as HMACs under a key, never as plain hashes.
 */
export class Keyring {
  constructor(private readonly keys: readonly SecretKey[]) {}

  /** The id new runs seal with, or undefined when no key is configured. */
  get currentId(): string | undefined {
    return this.keys[0]?.id;
  }

  private key(id: string | null | undefined): SecretKey {
    if (!id) throw new KeyringError(`no key to keep a secret with: set ${KEYRING_SETTING}`);
    const found = this.keys.find((k) => k.id === id);
    if (!found) throw new KeyringError(`the key '${id}' this was sealed with is no longer in ${KEYRING_SETTING}`);
    return found;
  }

  /** `id:iv:tag:ciphertext`, base64 parts, under the current key. */
  seal(plain: string): string {
    const { id, key } = this.key(this.currentId);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return [id, iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
  }

  open(sealed: string): string {
    const [id, iv, tag, body] = sealed.split(':');
    const decipher = createDecipheriv('aes-256-gcm', this.key(id).key, Buffer.from(iv ?? '', 'base64'));
    decipher.setAuthTag(Buffer.from(tag ?? '', 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(body ?? '', 'base64')), decipher.final()]).toString('utf8');
  }

  /**
   * A value kept at rest that may hold what a site returned (a row an operator's SQL read): sealed under the current
   * key, marked so that values kept before sealing are still read as they are.
   */
  sealAtRest(plain: string): string {
    return `${SEALED_AT_REST}${this.seal(plain)}`;
  }

  /** A value sealAtRest kept, opened; one sealed under a key no longer configured says so. */
  openAtRest(stored: string): string {
    if (!stored.startsWith(SEALED_AT_REST)) return stored;
    try {
      return this.open(stored.slice(SEALED_AT_REST.length));
    } catch {
      // biome-ignore lint/plugin: a value sealed under a retired key is shown as such, never as its ciphertext
      return `(sealed under a key no longer in ${KEYRING_SETTING})`;
    }
  }

  /** An HMAC of a secret under the key a run was sealed with (64 hex characters). */
  mac(keyId: string | null | undefined, value: string): string {
    return createHmac('sha256', this.key(keyId).key).update(value).digest('hex');
  }

  /**
   * What a value is compared by later (64 hex characters, null for no value): an HMAC when the value is secret,
   * else its SHA-256, which is fine to keep.
   */
  fingerprint(keyId: string | null | undefined, sensitive: boolean, value: string | null): string | null {
    if (value === null) return null;
    return sensitive ? this.mac(keyId, value) : createHash('sha256').update(value).digest('hex');
  }
}

/** `id:base64,id:base64` as the configuration gives it; the first key is the current one. */
export function parseKeyring(text: string): SecretKey[] {
  const keys = text.split(',').map((entry) => {
    const [id, encoded] = entry.trim().split(':');
    const key = Buffer.from(encoded ?? '', 'base64');
    if (!id || !/^[A-Za-z0-9_-]{1,16}$/.test(id) || key.length !== 32) throw new KeyringError('expected id:key pairs');
    return { id, key };
  });
  if (new Set(keys.map((k) => k.id)).size !== keys.length) throw new KeyringError('a key id is given twice');
  return keys;
}
