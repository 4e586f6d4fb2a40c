import type { Logger } from '../../core/log.ts';
import { errorFields } from '../../core/log.ts';

/** How many requests' work runs at once after their acks. */
const WORK_CONCURRENCY = 4;
/** Work waits until no request is being answered and none arrived for this long, so that a burst is all acknowledged first. */
const QUIET_MS = 20;

/**
 * The bot's work after an acknowledgement. Queued work (`later`) waits for a quiet moment and then runs a few at a
 * time; work bound to a trigger_id, which Slack honours for three seconds (`now`), starts at once, ahead of the queue.
 * A failure is never dropped: it is logged and handed to `onFailure`, which tells the user.
 */
export class SlackWork {
  private readonly pending = new Set<Promise<unknown>>();
  private readonly queue: Array<() => void> = [];
  private running = 0;
  private lastRequest = 0;
  private answering = 0;
  private waiting: NodeJS.Timeout | undefined;

  constructor(private readonly log: Logger) {}

  /** A request arrived: queued work holds back until it is answered and no other follows. */
  requestStarted(): void {
    this.lastRequest = Date.now();
    this.answering++;
  }

  requestAnswered(): void {
    this.answering--;
    this.next();
  }

  later(task: () => Promise<unknown>, onFailure?: (err: unknown) => Promise<unknown>): void {
    this.track(
      new Promise<void>((resolve) => {
        this.queue.push(() =>
          setImmediate(() => {
            this.guarded(task, onFailure).finally(() => {
              this.running--;
              resolve();
              this.next();
            });
          }),
        );
        this.next();
      }),
    );
  }

  now(task: () => Promise<unknown>, onFailure?: (err: unknown) => Promise<unknown>): void {
    this.track(this.guarded(task, onFailure));
  }

  /** A request's listeners, counted as work until they return, so that idle() waits for what a request started. */
  async during(listeners: Promise<unknown>): Promise<void> {
    // biome-ignore lint/plugin: a listener answers and logs its own failure; here only its end is counted
    this.track(listeners.catch(() => undefined));
    await listeners;
  }

  /** Resolves when no work is left (tests and a stopping bot wait on it). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Runs a task; a failure is logged, and told to whoever `onFailure` reaches (nobody, for work no user asked for). */
  private async guarded(task: () => Promise<unknown>, onFailure?: (err: unknown) => Promise<unknown>): Promise<void> {
    try {
      await task();
    } catch (err) {
      this.log.error({ ...errorFields(err) }, 'work after an acknowledgement failed');
      await onFailure?.(err).catch((replyErr) =>
        this.log.error({ ...errorFields(replyErr) }, 'the failure could not be reported to the user'),
      );
    }
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private next(): void {
    if (this.answering > 0) return;
    const quiet = Date.now() - this.lastRequest;
    if (quiet < QUIET_MS) {
      this.waiting ??= setTimeout(() => {
        this.waiting = undefined;
        this.next();
      }, QUIET_MS - quiet);
      return;
    }
    while (this.running < WORK_CONCURRENCY && this.queue.length > 0) {
      this.running++;
      (this.queue.shift() as () => void)();
    }
  }
}
