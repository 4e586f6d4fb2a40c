/** A command line (CLI or chat) that is wrong in a way the parser could not see; the CLI exits with 2 for it. */
export class UsageError extends Error {}
