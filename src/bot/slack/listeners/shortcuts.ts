import type { App, GlobalShortcut } from '@slack/bolt';
import { builderView } from '../builder.ts';
import type { SlackContext } from '../context.ts';

/** The global shortcut opens the command builder, at once, while its trigger is fresh. */
export function registerShortcuts(bolt: App, ctx: SlackContext): void {
  bolt.shortcut<GlobalShortcut>('vmoodle_builder', async ({ ack, shortcut }) => {
    await ack();
    const user = shortcut.user.id;
    ctx.now({ user, channel: user }, () =>
      ctx.client.views.open({ trigger_id: shortcut.trigger_id, view: builderView({ channel: user }) }),
    );
  });
}
