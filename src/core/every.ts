/**
 * Work a process does every `ms`: never two rounds at once, a failed round handed to `failed` (and tried again the
 * next time), and `stop` waiting for the round under way.
 */
export class Every {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly ms: number,
    private readonly work: () => Promise<unknown>,
    private readonly failed: (err: unknown) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.work()
        .then(() => undefined, this.failed)
        .finally(() => {
          this.running = undefined;
        });
    }, this.ms);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
