import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';

export interface RecordedCall {
  method: string;
  params: Record<string, unknown>;
  raw: string;
  /** The response_url a `respond` call was posted to. */
  url?: string;
  /** What the fake Slack answered (a posted message's ts). */
  answer?: Record<string, unknown>;
  /** When the call arrived (performance.now()). */
  at: number;
}

/** Where the latest fake Slack takes response_url posts; request bodies below name a fresh URL under it. */
let responseBase = 'http://127.0.0.1:9';
let responseCount = 0;

/** A response_url as Slack gives one with a request: the fake records posts to it for `user`. */
export const responseUrl = (user: string) => `${responseBase}/respond/${user}/${++responseCount}`;

/** A Slack Web API on loopback that answers like Slack and records every call, for tests of the real Bolt app. */
export class FakeSlackApi {
  readonly calls: RecordedCall[] = [];
  /** Members of user groups, as usergroups.users.list answers. */
  groups: Record<string, string[]> = {};
  private server: Server | undefined;
  private counter = 0;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let raw = '';
      req.on('data', (d) => (raw += d));
      req.on('end', () => {
        const path = req.url ?? '';
        const respond = /^\/respond\/([A-Z0-9]+)\/\d+$/.exec(path);
        if (respond) {
          // Slack takes five posts to a response_url; a sixth is refused.
          const used = this.calls.filter((c) => c.method === 'respond' && c.url === path).length;
          this.calls.push({
            method: 'respond',
            params: { ...JSON.parse(raw || '{}'), user: respond[1] },
            raw,
            url: path,
            at: performance.now(),
          });
          if (used >= 5)
            res.writeHead(404, { 'content-type': 'application/json' }).end('{"ok":false,"error":"used_url"}');
          else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
          return;
        }
        if (path.startsWith('/upload/')) {
          this.calls.push({ method: 'upload', params: {}, raw, at: performance.now() });
          res.writeHead(200).end('OK');
          return;
        }
        const method = path.replace(/^\/api\//, '').split('?')[0] as string;
        const params: Record<string, unknown> = {};
        if ((req.headers['content-type'] ?? '').includes('json')) Object.assign(params, JSON.parse(raw || '{}'));
        else for (const [k, v] of new URLSearchParams(raw)) params[k] = /^[[{]/.test(v) ? JSON.parse(v) : v;
        const answer = this.answer(method, params);
        this.calls.push({ method, params, raw, answer, at: performance.now() });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/api/`;
    responseBase = this.url.replace(/\/api\/$/, '');
  }

  private answer(method: string, params: Record<string, unknown>): Record<string, unknown> {
    const n = ++this.counter;
    if ((method === 'chat.postMessage' || method === 'chat.update') && params.channel === 'CNOTIN')
      return { ok: false, error: 'not_in_channel' };
    switch (method) {
      case 'auth.test':
        return { ok: true, user_id: 'UBOT', bot_id: 'BBOT', team_id: 'T1' };
      case 'chat.postMessage':
        // A message to a user id goes to the bot's direct message with them, a channel of its own.
        return {
          ok: true,
          channel: /^[UW]/.test(String(params.channel)) ? `D${params.channel}` : params.channel,
          ts: `1800000000.${String(n).padStart(6, '0')}`,
        };
      case 'views.open':
        return { ok: true, view: { id: `V${n}` } };
      case 'files.getUploadURLExternal':
        return { ok: true, upload_url: `${this.url.replace('/api/', '')}/upload/F${n}`, file_id: `F${n}` };
      case 'usergroups.users.list':
        return { ok: true, users: this.groups[params.usergroup as string] ?? [] };
      case 'files.completeUploadExternal':
        return { ok: true, files: [{ id: `F${n}` }] };
      default:
        return { ok: true };
    }
  }

  of(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** What a user was told: replies to their response_urls and direct messages, in order. */
  repliesTo(user: string): RecordedCall[] {
    return this.calls.filter(
      (c) =>
        (c.method === 'respond' && c.params.user === user) ||
        (c.method === 'chat.postMessage' && c.params.channel === user),
    );
  }

  /** The text of the latest thing a user was told. */
  lastReply(user: string): string | undefined {
    return this.repliesTo(user).at(-1)?.params.text as string | undefined;
  }

  async close(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

/** Posts a request to the bot as Slack would: form-encoded and signed with the signing secret. */
export async function signedPost(
  url: string,
  secret: string,
  body: string,
  opts: { timestamp?: number; signature?: string; json?: boolean; retry?: number } = {},
): Promise<Response> {
  const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000);
  const signature =
    opts.signature ?? `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
  const retry: Record<string, string> =
    opts.retry === undefined ? {} : { 'x-slack-retry-num': String(opts.retry), 'x-slack-retry-reason': 'http_timeout' };
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': opts.json ? 'application/json' : 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(timestamp),
      'x-slack-signature': signature,
      ...retry,
    },
    body,
  });
}

let triggerCount = 0;

export const slashBody = (user: string, text: string, channel = 'C1', replyUrl = responseUrl(user)) =>
  new URLSearchParams({
    token: 'x',
    team_id: 'T1',
    channel_id: channel,
    user_id: user,
    command: '/vmoodle',
    text,
    response_url: replyUrl,
    trigger_id: `trig-${++triggerCount}-${Date.now()}`,
  }).toString();

export const interactionBody = (payload: object) =>
  new URLSearchParams({ payload: JSON.stringify(payload) }).toString();

export const buttonPayload = (user: string, actionId: string, value: string, channel = 'C1') => ({
  type: 'block_actions',
  team: { id: 'T1' },
  user: { id: user },
  channel: { id: channel },
  trigger_id: `trig-${user}-${Date.now()}`,
  api_app_id: 'A1',
  token: 'x',
  container: { type: 'message' },
  response_url: responseUrl(user),
  actions: [{ type: 'button', action_id: actionId, block_id: 'b', value, action_ts: '1' }],
});

export const viewAction = (
  user: string,
  actionId: string,
  view: { id: string; hash?: string; private_metadata: string },
  action: object,
) => ({
  type: 'block_actions',
  team: { id: 'T1' },
  user: { id: user },
  api_app_id: 'A1',
  token: 'x',
  trigger_id: `trig-${user}`,
  container: { type: 'view' },
  view: { hash: 'h1', ...view },
  actions: [{ action_id: actionId, block_id: actionId, action_ts: '1', ...action }],
});

let eventCount = 0;

/** An Events API delivery; a retry carries the same event_id. */
export const eventBody = (event: object, eventId = `Ev${process.pid}x${Date.now()}x${++eventCount}`) =>
  JSON.stringify({
    token: 'x',
    team_id: 'T1',
    api_app_id: 'A1',
    type: 'event_callback',
    event_id: eventId,
    event_time: Math.floor(Date.now() / 1000),
    event,
  });

export const approvalSubmission = (user: string, privateMetadata: string, typed: string) => ({
  type: 'view_submission',
  team: { id: 'T1' },
  user: { id: user },
  api_app_id: 'A1',
  token: 'x',
  trigger_id: `trig-${user}`,
  view: {
    id: 'V1',
    type: 'modal',
    callback_id: 'approve_modal',
    private_metadata: privateMetadata,
    state: { values: { typed: { value: { type: 'plain_text_input', value: typed } } } },
  },
});

export const viewSubmission = (user: string, callbackId: string, privateMetadata: string, values: object) => ({
  type: 'view_submission',
  team: { id: 'T1' },
  user: { id: user },
  api_app_id: 'A1',
  token: 'x',
  trigger_id: `trig-${user}`,
  view: { id: 'V2', type: 'modal', callback_id: callbackId, private_metadata: privateMetadata, state: { values } },
});

/**
 * Plans a run through /vmoodle, has a second person approve it through the button and the modal, and returns the
 * Web API calls made from the approval to the end of the run's report.
 */
export async function runWithApproval(
  bot: { url: string; idle(): Promise<void> },
  api: FakeSlackApi,
  secret: string,
  request: { requester: string; line: string; approver: string; typed: string },
): Promise<{ calls: RecordedCall[]; seconds: number }> {
  await signedPost(bot.url, secret, slashBody(request.requester, request.line));
  await bot.idle();
  const value = firstButton(api.of('chat.postMessage').at(-1) as RecordedCall)?.value as string;
  await signedPost(bot.url, secret, interactionBody(buttonPayload(request.approver, 'approve', value)));
  await bot.idle();
  const view = (api.of('views.open').at(-1) as RecordedCall).params.view as { private_metadata: string };
  const before = api.calls.length;
  const started = performance.now();
  await signedPost(
    bot.url,
    secret,
    interactionBody(approvalSubmission(request.approver, view.private_metadata, request.typed)),
  );
  await bot.idle();
  return { calls: api.calls.slice(before), seconds: (performance.now() - started) / 1000 };
}

/** The first button of a message's actions block (an approval request's Approve, a preview's offer), if it has one. */
export const firstButton = (call: RecordedCall) =>
  (call.params.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>).find(
    (b) => b.type === 'actions',
  )?.elements?.[0];
