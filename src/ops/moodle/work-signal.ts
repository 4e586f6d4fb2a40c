import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The abort signal of the work under way (one target's apply): when it aborts, every connection that work holds has
 * its query killed and is closed, and every PHP process it started is stopped. Commands need not pass it along.
 */
const WORK_SIGNAL = new AsyncLocalStorage<AbortSignal>();

/** Runs `work` so that aborting `signal` stops its database queries and processes. */
export const stoppable = <T>(signal: AbortSignal, work: () => Promise<T>): Promise<T> => WORK_SIGNAL.run(signal, work);

/** The abort signal of the work under way, if any. */
export const workSignal = (): AbortSignal | undefined => WORK_SIGNAL.getStore();
