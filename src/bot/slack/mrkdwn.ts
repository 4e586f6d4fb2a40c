/**
 * Slack reads message text as mrkdwn, where `<!channel>` notifies a whole channel and `<https://…|label>` hides a
 * link behind any label. Text from users and from the registry is escaped before Slack sees it.
 */
export const escapeMrkdwn = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** A mention of a Slack user; someone who is not one (a command-line user) is named as escaped text. */
export const mention = (id: string) => (/^[UW][A-Z0-9]{2,}$/.test(id) ? `<@${id}>` : escapeMrkdwn(id));
