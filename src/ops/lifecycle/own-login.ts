import { errorKind } from '../../core/errors.ts';
import { instanceHost } from '../../registry/fleet.ts';
import type { Instance } from '../../registry/instance.ts';
import type { MoodleAccess } from '../moodle/access.ts';
import { grantLogin, instanceLoginName, newLoginPassword } from '../moodle/db-logins.ts';
import { instanceTarget, type MoodleDb } from '../moodle/target.ts';
import { serverName } from '../../core/security-settings.ts';

export class OwnLoginError extends errorKind('registry') {}

/**
 * Makes an existing instance a login of its own on its server, with the server's provisioning account, and checks
 * that it reaches the instance's tables before the caller records it: a row that shared the master's login (or
 * another instance's) then reads nothing but its own database.
 */
export async function giveOwnLogin(
  access: MoodleAccess,
  instance: Instance,
  provisioning: (server: Pick<MoodleDb, 'host' | 'port'>) => Promise<Pick<MoodleDb, 'user' | 'password'> | undefined>,
): Promise<{ user: string; password: string }> {
  const target = instanceTarget(instanceHost(instance), instance);
  const account = await provisioning(target.db);
  if (!account)
    throw new OwnLoginError(
      `${instance.shortname}: no provisioning account for ${serverName(target.db)}: an admin seals one with vmoodle settings provisioning ${serverName(target.db)}`,
    );
  const login = { user: instanceLoginName(target.db), password: newLoginPassword() };
  await access.withConnection({ ...target, db: { ...target.db, ...account } }, (conn) =>
    grantLogin(conn, login.user, login.password, { name: target.db.database }),
  );
  await access.withConnection({ ...target, db: { ...target.db, ...login } }, (conn) =>
    conn.query(`SELECT 1 FROM ${access.table(target, 'config')} LIMIT 1`),
  );
  return login;
}
