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
} as const;

/** Text cut to fit one section, saying so when it had to cut. */
export function fitSection(text: string): string {
  if (text.length <= SLACK_LIMITS.sectionText) return text;
  const note = '\n… (cut to fit Slack)';
  return text.slice(0, SLACK_LIMITS.sectionText - note.length) + note;
}
