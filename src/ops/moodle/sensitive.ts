/**
 * Moodle settings whose values are secrets. Their values are masked in previews, results, files and messages, and
 * the compare-and-set of a write keeps only a hash of the old value, so no copy of the secret is stored.
 */
export const SENSITIVE_CORE = new Set([
  'smtppass',
  'proxypassword',
  'cronremotepassword',
  'registrationtoken',
  'calendar_exportsalt',
  'badges_badgesalt',
  'passwordsaltmain',
  'recaptchaprivatekey',
  'auth_ldap_bind_pw',
  'mnet_remote_password',
  'supportpagepassword',
]);

export const SENSITIVE_PLUGIN = new Set([
  'mnet/openssl',
  'mnet/openssl_history',
  'mod_lti/privatekey',
  'enrol_lti/lti_13_privatekey',
  'auth_ldap/bind_pw',
  'auth_cas/bind_pw',
  'auth_db/pass',
  'enrol_database/dbpass',
  'enrol_ldap/bind_pw',
  'tool_mobile/apikey',
  'local_vmoodle/vdbpass',
  'tool_delivery/password',
]);

/** Names that are secret in any plugin: passwords, private keys, secrets, salts and tokens. */
export const SENSITIVE_PATTERN = /(pass(word|wd)?|pwd|secret|privatekey|private_key|salt|token|apikey|api_key)$/i;

export function isSensitiveSetting(name: string, plugin?: string | null): boolean {
  const core = !plugin || plugin === 'core' || plugin === 'moodle';
  if (core ? SENSITIVE_CORE.has(name) : SENSITIVE_PLUGIN.has(`${plugin}/${name}`)) return true;
  return SENSITIVE_PATTERN.test(name);
}

export const MASK = '••••••';

export function maskIf(sensitive: boolean, value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  return sensitive ? MASK : value;
}
