import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { errorFields, type Logger } from './log.ts';
import { OpsError } from './errors.ts';

export interface MetricsListener {
  url: string;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  registry: Registry;
  port: number;
  host: string;
  /** What this process needs and cannot reach now (empty when ready). */
  unready(): Promise<string[]>;
  log: Logger;
}

/**
 * A listener of its own for the monitoring an ops team runs: `/metrics` (Prometheus' text format), `/healthz` (the
 * process answers) and `/readyz` (it reaches what it needs). It answers GET only, and nothing else is served on it.
 */
export async function serveMetrics(options: MetricsServerOptions): Promise<MetricsListener> {
  const { registry, log } = options;
  const answer = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(text);
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('alive\n');
    } else if (path === '/readyz') {
      const missing = await options.unready();
      res
        .writeHead(missing.length === 0 ? 200 : 503, { 'content-type': 'text/plain' })
        .end(missing.length === 0 ? 'ready\n' : `not ready: ${missing.join('; ')}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('/metrics, /healthz or /readyz\n');
    }
  };
  const server = createServer((req, res) => {
    answer(req, res).catch((err: unknown) => {
      log.warn({ ...errorFields(err), path: req.url }, 'a metrics request could not be answered');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end('the metrics could not be read; see the log\n');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new OpsError(
          'config',
          `the metrics listener cannot use ${options.host}:${options.port} (${err.code ?? err.message})`,
          { hint: 'give each process on a host its own VMOODLE_METRICS_PORT' },
        ),
      ),
    );
    server.listen(options.port, options.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  log.info({ host: options.host, port }, 'metrics served');
  return {
    url: `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
