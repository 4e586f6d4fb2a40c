/** Slack's limits, in one place; every message and view the bot builds stays inside them. */
export const SLACK_LIMITS = {
  blocksPerMessage: 50,
  blocksPerModal: 100,
  sectionText: 3000,
  headerText: 150,
  buttonValue: 2000,
  optionsPerSelect: 100,
  plainTextInput: 3000,
  /** Slack allows about one message a second per channel; progress edits one message at most this often. */
  progressEditMs: 3000,
  /** Failure rows shown in a thread; the rest go to the CSV file. */
  failureRows: 100,
  /** Slack's own deadline for acknowledging a request. */
  ackMs: 3000,
  /** How old or how far ahead a signed request may be. */
  maxRequestAgeSeconds: 300,
  maxRequestAheadSeconds: 60,
  /** A response_url takes this many posts, within this long; later replies go to the user's direct message. */
  responseUrlPosts: 5,
  responseUrlMs: 30 * 60_000,
  /** How long an Events API delivery's event_id is remembered, so that a retry of a handled event is not handled again. */
  eventIdSeconds: 3600,
} as const;

/** Text cut to fit one section, saying so when it had to cut. */
export function fitSection(text: string): string {
  if (text.length <= SLACK_LIMITS.sectionText) return text;
  const note = '\n… (cut to fit Slack)';
  return text.slice(0, SLACK_LIMITS.sectionText - note.length) + note;
}
