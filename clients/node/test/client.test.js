'use strict';
// The Node client end to end: a live gateway (with a tenant's API key) in front of the vendor
// sandbox, both started by the project's Python launcher; every assertion is about what a caller
// sees and what the "vendor" received.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { after, before, describe, test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { status } = grpc;

const {
  NotifyClient,
  DeadlineExceededError,
  InvalidArgumentError,
  NotFoundError,
  RateLimitedError,
  UnauthenticatedError,
  UnavailableError,
  listMessagesRequest,
  loadService,
} = require('../src');
const { startGateway, received, injectFault } = require('./support/gateway');

const APP_USERS = { 'corp-app': ['zhangsan'], 'ding-app': ['user01'] }; // in the sandbox's directories
const FAST_RETRY = { maxAttempts: 3, initialBackoffMs: 10, maxBackoffMs: 50, maxTotalMs: 2_000 };

let gateway;
let client;
let tmp;

before(async () => {
  gateway = await startGateway();
  client = new NotifyClient(gateway.address, { apiKey: gateway.apiKey, insecure: true, retry: FAST_RETRY });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'notify-node-'));
});

after(async () => {
  client?.close();
  await gateway?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('send', () => {
  for (const [account, channel] of [
    ['team-wecom', 'wecom_robot'],
    ['ops-dingtalk', 'dingtalk_robot'],
    ['plain-dingtalk', 'dingtalk_robot'],
    ['corp-app', 'wecom_app'],
    ['ding-app', 'dingtalk_work'],
  ]) {
    test(`a text reaches ${account} (${channel})`, async () => {
      const content = `hello from node via ${account}`;
      const users = APP_USERS[account];
      const response = await client.sendText(account, content, users ? { recipients: { userIds: users } } : {});

      assert.equal(response.messageId.length, 26);
      assert.ok(['MESSAGE_STATE_SENT', 'MESSAGE_STATE_ACCEPTED'].includes(response.state), response.state);
      const delivered = await received(gateway.sandbox, { channel, robot: account, delivered: true });
      assert.ok(
        delivered.some((entry) => JSON.stringify(entry.body).includes(content)),
        `the sandbox's ${channel} ${account} did not get the text: ${JSON.stringify(delivered)}`,
      );
    });
  }

  test('a raw SendRequest with markdown', async () => {
    const response = await client.send({
      account: 'ops-dingtalk',
      message: { markdown: { title: 'Deploy', content: '# Deploy\n**done**' } },
      labels: { team: 'payments' },
    });
    assert.equal(response.state, 'MESSAGE_STATE_SENT');
    assert.equal(response.duplicate, false);
  });

  test('the same idempotency key delivers once', async () => {
    const key = `node-${crypto.randomUUID()}`;
    const first = await client.sendText('plain-dingtalk', 'only once', { idempotencyKey: key });
    const again = await client.sendText('plain-dingtalk', 'only once', { idempotencyKey: key });
    assert.equal(again.duplicate, true);
    assert.equal(again.messageId, first.messageId);
  });
});

describe('recall', () => {
  for (const account of ['corp-app', 'ding-app']) {
    test(`withdraws a message sent through ${account}`, async () => {
      const sent = await client.sendText(account, 'sent by mistake', { recipients: { userIds: APP_USERS[account] } });
      assert.equal(sent.recallable, true);

      const recalled = await client.recall(sent.messageId);

      assert.equal(recalled.messageId, sent.messageId);
      assert.equal(recalled.state, 'MESSAGE_STATE_RECALLED');
    });
  }
});

describe('uploadMedia', () => {
  test('streams a file from disk in chunks', async () => {
    const data = crypto.randomBytes(300 * 1024 + 17);
    const file = path.join(tmp, 'report.pdf');
    fs.writeFileSync(file, data);

    const uploaded = await client.uploadMedia({ account: 'corp-app', type: 'file', file }, { chunkSize: 16 * 1024 });

    assert.ok(uploaded.mediaId);
    assert.equal(uploaded.type, 'MEDIA_TYPE_FILE');
    assert.equal(Number(uploaded.size), data.length);
    assert.equal(uploaded.sha256, crypto.createHash('sha256').update(data).digest('hex'));
    assert.ok(uploaded.expiresAt, 'WeCom media expires');
  });

  test('a refused upload reports the gateway status, not a transport error', async () => {
    const file = path.join(tmp, 'clip.mp3'); // the WeCom robot takes .amr voice clips only
    fs.writeFileSync(file, Buffer.alloc(1_500_000, 1));
    for (let i = 0; i < 3; i += 1) {
      await assert.rejects(client.uploadFile('team-wecom', file, 'voice', { chunkSize: 32 * 1024 }), (error) => {
        assert.ok(error instanceof InvalidArgumentError, `${error}`);
        assert.match(error.violations['info.filename'], /amr/);
        return true;
      });
    }
  });
});

describe('errors', () => {
  test('a bad request carries its field violations', async () => {
    await assert.rejects(client.sendText('team-wecom', ''), (error) => {
      assert.ok(error instanceof InvalidArgumentError);
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.equal(error.codeName, 'INVALID_ARGUMENT');
      assert.deepEqual(error.violations, { 'message.text.content': 'is required' });
      assert.equal(error.reason, 'INVALID_ARGUMENT');
      assert.equal(error.domain, 'notify-gateway');
      assert.ok(error.idempotencyKey, 'the key travels with the error, for a later retry');
      return true;
    });
  });

  test('an unknown account is NOT_FOUND with ErrorInfo', async () => {
    await assert.rejects(client.sendText('nobody', 'hello'), (error) => {
      assert.ok(error instanceof NotFoundError);
      assert.equal(error.reason, 'ACCOUNT_NOT_FOUND');
      assert.equal(error.metadata.account, 'nobody');
      return true;
    });
  });

  test('a wrong API key is UNAUTHENTICATED', async () => {
    const stranger = new NotifyClient(gateway.address, { apiKey: 'not-the-key', insecure: true, retry: FAST_RETRY });
    try {
      await assert.rejects(stranger.sendText('team-wecom', 'hello'), (error) => {
        assert.ok(error instanceof UnauthenticatedError);
        assert.equal(error.code, status.UNAUTHENTICATED);
        assert.equal(error.reason, 'API_KEY_INVALID');
        return true;
      });
      const file = path.join(tmp, 'notes.txt');
      fs.writeFileSync(file, Buffer.alloc(512 * 1024, 2));
      await assert.rejects(stranger.uploadFile('corp-app', file, 'file'), UnauthenticatedError);
    } finally {
      stranger.close();
    }
  });

  test("a vendor's rate limit carries RetryInfo and the vendor errcode", async () => {
    await injectFault(gateway.sandbox, { channel: 'wecom_robot', robot: 'team-wecom', errcode: 45009, errmsg: 'api freq out of limit' });
    const retries = [];
    const limited = new NotifyClient(gateway.address, {
      apiKey: gateway.apiKey,
      insecure: true,
      retry: { ...FAST_RETRY, onRetry: (event) => retries.push(event) },
    });
    try {
      await assert.rejects(limited.sendText('team-wecom', 'hello'), (error) => {
        assert.ok(error instanceof RateLimitedError);
        assert.equal(error.retryDelayMs, 60_000);
        assert.equal(error.isVendorError, true);
        assert.equal(error.vendorErrcode, 45009);
        assert.equal(error.reason, 'VENDOR_RATE_LIMITED');
        return true;
      });
      assert.deepEqual(retries, [], 'a 60 s delay does not fit a 2 s retry budget');
    } finally {
      limited.close();
    }
  });
});

describe('retries', () => {
  test('UNAVAILABLE is retried under the same key and delivered once', async () => {
    // A 502 may come from a proxy after the vendor acted: the gateway records the message UNKNOWN and
    // answers UNAVAILABLE. The DingTalk robot drops repeats of a msgUuid, so there the gateway may
    // send again, and the client's retry under the same key is the one delivery. (The gateway tries
    // three times itself; three 502s make it answer UNAVAILABLE.)
    await injectFault(gateway.sandbox, { channel: 'dingtalk_robot', robot: 'plain-dingtalk', http_status: 502, times: 3 });
    const before = (await received(gateway.sandbox, { channel: 'dingtalk_robot', robot: 'plain-dingtalk', delivered: true })).length;
    const retries = [];
    const retrying = new NotifyClient(gateway.address, {
      apiKey: gateway.apiKey,
      insecure: true,
      retry: { ...FAST_RETRY, onRetry: (event) => retries.push(event) },
    });
    try {
      const response = await retrying.sendText('plain-dingtalk', 'after a hiccup');
      assert.equal(response.state, 'MESSAGE_STATE_SENT');
      assert.equal(retries.length, 1);
      assert.equal(retries[0].error.code, status.UNAVAILABLE);
      assert.equal(retries[0].error.metadata.http_status, '502');
      assert.equal(retries[0].error.messageState, 'MESSAGE_STATE_UNKNOWN');
      assert.equal(retries[0].error.messageId, response.messageId, 'the retry continued the same message');
      const replay = await retrying.sendText('plain-dingtalk', 'after a hiccup', { idempotencyKey: retries[0].idempotencyKey });
      assert.equal(replay.duplicate, true, 'the retry carried the key the first attempt had');
      assert.equal(replay.messageId, response.messageId);
    } finally {
      retrying.close();
    }
    const delivered = await received(gateway.sandbox, { channel: 'dingtalk_robot', robot: 'plain-dingtalk', delivered: true });
    assert.equal(delivered.length, before + 1);
  });
});

describe('TLS', () => {
  test('the API key travels as call credentials over TLS', async () => {
    const secure = await startGateway({ tls: true });
    const port = secure.address.split(':').pop();
    const rootCerts = fs.readFileSync(secure.ca);
    const clients = [];
    try {
      const trusted = new NotifyClient(`localhost:${port}`, { apiKey: secure.apiKey, rootCerts, retry: FAST_RETRY });
      clients.push(trusted);
      const response = await trusted.sendText('team-wecom', 'over TLS');
      assert.equal(response.state, 'MESSAGE_STATE_SENT');

      const stranger = new NotifyClient(`localhost:${port}`, { apiKey: 'not-the-key', rootCerts, retry: FAST_RETRY });
      clients.push(stranger);
      await assert.rejects(stranger.sendText('team-wecom', 'over TLS'), UnauthenticatedError);
    } finally {
      for (const c of clients) c.close();
      await secure.stop();
    }
  });
});

describe('message records', () => {
  const unique = () => ({ run: crypto.randomUUID().slice(0, 12) }); // a label only this test's messages carry

  test('getMessage after a send returns its record', async () => {
    const labels = { team: 'payments', ...unique() };
    const idempotencyKey = `node-get-${crypto.randomUUID()}`;
    const sent = await client.sendText('team-wecom', 'recorded', { labels, idempotencyKey });

    const record = await client.getMessage(sent.messageId);

    assert.equal(record.messageId, sent.messageId);
    assert.equal(record.state, 'MESSAGE_STATE_SENT');
    assert.deepEqual([record.account, record.channel, record.kind], ['team-wecom', 'wecom_robot', 'text']);
    assert.deepEqual(record.labels, labels);
    assert.equal(record.idempotencyKey, idempotencyKey);
    assert.equal(record.attempts.length, 1, JSON.stringify(record.attempts));
    assert.equal(record.attempts[0].outcome, 'OUTCOME_ACCEPTED');
    assert.equal(record.history.at(-1).state, 'MESSAGE_STATE_SENT');
  });

  test('listMessages pages newest first and filters by label, state and account', async () => {
    const labels = unique();
    const sent = [];
    for (let i = 0; i < 3; i += 1) sent.push(await client.sendText('ops-dingtalk', `page ${i}`, { labels }));
    const newestFirst = sent.map((response) => response.messageId).reverse();

    const first = await client.listMessages({ labels, pageSize: 2 });
    assert.deepEqual(first.messages.map((m) => m.messageId), newestFirst.slice(0, 2));
    assert.ok(first.nextPageToken);
    const second = await client.listMessages({ labels, pageSize: 2, pageToken: first.nextPageToken });
    assert.deepEqual(second.messages.map((m) => m.messageId), newestFirst.slice(2));
    assert.equal(second.nextPageToken, '');

    const all = [];
    for await (const record of client.iterMessages({ labels, pageSize: 2 })) all.push(record.messageId);
    assert.deepEqual(all, newestFirst);
    const sentOnes = await client.listMessages({ labels, states: ['sent'], account: 'ops-dingtalk' });
    assert.equal(sentOnes.messages.length, 3);
    assert.deepEqual((await client.listMessages({ labels, states: 'MESSAGE_STATE_FAILED' })).messages, []);
    assert.deepEqual((await client.listMessages({ labels, account: 'team-wecom' })).messages, []);
    assert.deepEqual((await client.listMessages({ labels, startTime: new Date(Date.now() + 3_600_000) })).messages, []);
  });

  test('a bad page token or a negative page size names the field', async () => {
    await assert.rejects(client.listMessages({ pageToken: 'not-a-token' }), (error) => {
      assert.ok(error instanceof InvalidArgumentError, `${error}`);
      assert.ok('page_token' in error.violations, JSON.stringify(error.violations));
      return true;
    });
    await assert.rejects(client.listMessages({ pageSize: -1 }), (error) => {
      assert.ok(error instanceof InvalidArgumentError, `${error}`);
      assert.ok('page_size' in error.violations, JSON.stringify(error.violations));
      return true;
    });
  });

  test('a filter takes state names and Dates', () => {
    const request = listMessagesRequest({ states: ['sent', 'DELIVERED'], startTime: new Date(1_500), pageSize: 2 });
    assert.deepEqual(request.states, ['MESSAGE_STATE_SENT', 'MESSAGE_STATE_DELIVERED']);
    assert.deepEqual(request.startTime, { seconds: 1, nanos: 500_000_000 });
    assert.throws(() => listMessagesRequest({ states: ['sent-ish'] }), /not one of/);
  });

  test('watchMessage follows a DingTalk work notification until it is DELIVERED', async () => {
    const sent = await client.sendText('ding-app', 'please read', { recipients: { userIds: ['user01'] } });
    assert.equal(sent.state, 'MESSAGE_STATE_SENT');

    const records = [];
    for await (const record of client.watchMessage(sent.messageId, { timeoutMs: 60_000 })) records.push(record);

    assert.equal(records[0].state, 'MESSAGE_STATE_SENT');
    const last = records.at(-1);
    assert.equal(last.state, 'MESSAGE_STATE_DELIVERED');
    assert.equal(last.final, true);
    assert.ok(records.slice(0, -1).every((record) => !record.final), 'the stream ends at the final record');
    const report = last.deliveryReport;
    assert.ok([...report.readUserIds, ...report.unreadUserIds].includes('user01'), JSON.stringify(report));
  });

  test('a message that is already final is watched as one record', async () => {
    const sent = await client.sendText('plain-dingtalk', 'robots report no delivery');
    const states = [];
    for await (const record of client.watchMessage(sent.messageId, { timeoutMs: 10_000 })) states.push([record.state, record.final]);
    assert.deepEqual(states, [['MESSAGE_STATE_SENT', true]]);
  });

  test("another tenant's message and an unknown messageId are both NOT_FOUND", async () => {
    const labels = unique();
    const sent = await client.sendText('plain-dingtalk', 'first tenant only', { labels });
    const other = new NotifyClient(gateway.address, { apiKey: gateway.otherApiKey, insecure: true, retry: FAST_RETRY });
    try {
      await assert.rejects(other.getMessage(sent.messageId), NotFoundError);
      await assert.rejects(drain(other.watchMessage(sent.messageId, { timeoutMs: 5_000 })), NotFoundError);
      assert.deepEqual((await other.listMessages({ labels })).messages, []);
    } finally {
      other.close();
    }
    await assert.rejects(client.getMessage('01J0000000000000000000000Z'), NotFoundError);
    await assert.rejects(drain(client.watchMessage('01J0000000000000000000000Z', { timeoutMs: 5_000 })), NotFoundError);
    await assert.rejects(client.getMessage(''), (error) => {
      assert.ok(error instanceof InvalidArgumentError);
      assert.ok('message_id' in error.violations, JSON.stringify(error.violations));
      return true;
    });
  });
});

describe('retry safety under injected vendor timeouts', () => {
  // flaky-wecom is a WeCom robot account of its own (serve_for_node.py) whose vendor calls time out
  // after 0.5 s; a fault delay of 1.5 s answers long after that, though the sandbox acts on arrival.
  const ACCOUNT = 'flaky-wecom';
  const DELAY_SECONDS = 1.5;

  test('no WeCom robot message is delivered twice, and ambiguous ones come back UNKNOWN', async () => {
    const K = 6;
    const N = 2;
    await injectFault(gateway.sandbox, { channel: 'wecom_robot', robot: ACCOUNT, delay: DELAY_SECONDS, times: N });
    const retries = [];
    const retrying = new NotifyClient(gateway.address, {
      apiKey: gateway.apiKey,
      insecure: true,
      retry: { ...FAST_RETRY, maxTotalMs: 5_000, onRetry: (event) => retries.push(event) },
    });
    const contents = Array.from({ length: K }, (_, i) => `node retry-safety ${i} ${crypto.randomUUID()}`);
    try {
      const responses = await Promise.all(contents.map((content) => retrying.sendText(ACCOUNT, content)));

      const arrived = count(await received(gateway.sandbox, { channel: 'wecom_robot', robot: ACCOUNT }), contents);
      const delivered = count(await received(gateway.sandbox, { channel: 'wecom_robot', robot: ACCOUNT, delivered: true }), contents);
      assert.ok(contents.every((c) => (delivered.get(c) ?? 0) <= 1), `delivered twice: ${JSON.stringify([...delivered])}`);
      assert.ok(contents.every((c) => arrived.get(c) === 1), `sent again: ${JSON.stringify([...arrived])}`);
      const states = responses.map((response) => response.state);
      assert.equal(states.filter((s) => s === 'MESSAGE_STATE_SENT').length, K - N, states.join());
      assert.equal(states.filter((s) => s === 'MESSAGE_STATE_UNKNOWN').length, N, states.join());
      for (const [i, response] of responses.entries()) {
        if (response.state === 'MESSAGE_STATE_SENT') {
          assert.equal(delivered.get(contents[i]), 1);
          assert.equal(response.duplicate, false);
        } else {
          assert.equal(response.duplicate, true, 'the UNKNOWN state came from the retry, replayed');
          const record = await retrying.getMessage(response.messageId);
          assert.equal(record.state, 'MESSAGE_STATE_UNKNOWN');
          assert.deepEqual(record.attempts.map((a) => a.outcome), ['OUTCOME_AMBIGUOUS']);
        }
      }
      const unknownIds = responses.filter((r) => r.state === 'MESSAGE_STATE_UNKNOWN').map((r) => r.messageId);
      assert.equal(retries.length, N);
      for (const event of retries) {
        assert.ok(event.error instanceof UnavailableError, `${event.error}`);
        assert.equal(event.error.messageState, 'MESSAGE_STATE_UNKNOWN');
        assert.ok(unknownIds.includes(event.error.messageId));
      }
    } finally {
      retrying.close();
    }
  });

  test('without retries, the error names the message and its UNKNOWN state', async () => {
    await injectFault(gateway.sandbox, { channel: 'wecom_robot', robot: ACCOUNT, delay: DELAY_SECONDS });
    const once = new NotifyClient(gateway.address, { apiKey: gateway.apiKey, insecure: true, retry: { maxAttempts: 1 } });
    const content = `node did it arrive ${crypto.randomUUID()}`;
    try {
      const error = await once.sendText(ACCOUNT, content).then(
        () => assert.fail('the vendor answered too late: the send must fail'),
        (e) => e,
      );
      assert.ok(error instanceof UnavailableError, `${error}`);
      assert.equal(error.messageState, 'MESSAGE_STATE_UNKNOWN');
      assert.ok(error.messageId);
      assert.equal((await once.getMessage(error.messageId)).state, 'MESSAGE_STATE_UNKNOWN');

      const again = await once.sendText(ACCOUNT, content, { idempotencyKey: error.idempotencyKey });

      assert.equal(again.duplicate, true);
      assert.equal(again.messageId, error.messageId);
      assert.equal(again.state, 'MESSAGE_STATE_UNKNOWN');
    } finally {
      once.close();
    }
    const arrived = count(await received(gateway.sandbox, { channel: 'wecom_robot', robot: ACCOUNT }), [content]);
    assert.equal(arrived.get(content), 1);
  });
});

describe('reads against a scripted server', () => {
  // A grpc-js server playing the gateway's part from a script, to break calls where a test wants.
  const record = (state, final = false) => ({ messageId: 'm-1', state, final });
  let scripted;
  let calls;

  before(async () => {
    calls = { get: 0, watch: 0, cancelled: 0 };
    scripted = await startScripted({
      GetMessage(call, callback) {
        calls.get += 1;
        if (calls.get === 1) callback({ code: status.UNAVAILABLE, details: 'restarting' });
        else callback(null, { message: record('MESSAGE_STATE_SENT') });
      },
      WatchMessage(call) {
        calls.watch += 1;
        const id = call.request.messageId;
        call.on('cancelled', () => {
          calls.cancelled += 1;
        });
        if (id === 'breaks-once') {
          call.write({ message: record('MESSAGE_STATE_SENT') });
          if (calls.watch === 1) {
            call.emit('error', { code: status.UNAVAILABLE, details: 'gateway shutting down' });
            return;
          }
          call.write({ message: record('MESSAGE_STATE_DELIVERED', true) });
          call.end();
        } else {
          call.write({ message: record('MESSAGE_STATE_SENDING') }); // then nothing: the message stays SENDING
        }
      },
    });
  });

  after(async () => {
    await scripted?.stop();
  });

  const scriptedClient = (retries = []) =>
    new NotifyClient(scripted.address, { insecure: true, retry: { ...FAST_RETRY, onRetry: (event) => retries.push(event) } });

  test('a read is retried when the gateway is UNAVAILABLE', async () => {
    const retries = [];
    const c = scriptedClient(retries);
    try {
      assert.equal((await c.getMessage('m-1')).state, 'MESSAGE_STATE_SENT');
    } finally {
      c.close();
    }
    assert.deepEqual(retries.map((event) => event.method), ['GetMessage']);
  });

  test('a broken watch is resumed without repeating a record', async () => {
    calls.watch = 0;
    const retries = [];
    const c = scriptedClient(retries);
    const states = [];
    try {
      for await (const r of c.watchMessage('breaks-once', { timeoutMs: 5_000 })) states.push(r.state);
    } finally {
      c.close();
    }
    assert.deepEqual(states, ['MESSAGE_STATE_SENT', 'MESSAGE_STATE_DELIVERED']);
    assert.equal(calls.watch, 2);
    assert.deepEqual(retries.map((event) => event.method), ['WatchMessage']);
  });

  test('a watch past its deadline rejects with DeadlineExceededError', async () => {
    const c = scriptedClient();
    const states = [];
    try {
      await assert.rejects(
        (async () => {
          for await (const r of c.watchMessage('stays-sending', { timeoutMs: 300 })) states.push(r.state);
        })(),
        (error) => {
          assert.ok(error instanceof DeadlineExceededError, `${error}`);
          assert.match(error.message, /MESSAGE_STATE_SENDING/);
          return true;
        },
      );
    } finally {
      c.close();
    }
    assert.deepEqual(states, ['MESSAGE_STATE_SENDING']);
  });

  test('cancel() ends a watch quietly and cancels the call', async () => {
    const c = scriptedClient();
    const before = calls.cancelled;
    const watch = c.watchMessage('stays-sending', { timeoutMs: 10_000 });
    const states = [];
    try {
      for await (const r of watch) {
        states.push(r.state);
        watch.cancel();
      }
    } finally {
      c.close();
    }
    assert.deepEqual(states, ['MESSAGE_STATE_SENDING']);
    await waitFor(() => calls.cancelled > before, 'the server to see the call cancelled');
  });
});

async function drain(iterable) {
  for await (const _ of iterable); // eslint-disable-line no-unused-vars
}

/** How many sandbox entries carry each of `contents` as their text. */
function count(entries, contents) {
  const counts = new Map();
  for (const entry of entries) {
    const content = entry.body?.text?.content;
    if (contents.includes(content)) counts.set(content, (counts.get(content) ?? 0) + 1);
  }
  return counts;
}

async function startScripted(handlers) {
  const server = new grpc.Server();
  server.addService(loadService().service, handlers);
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { address: `127.0.0.1:${port}`, stop: async () => server.forceShutdown() };
}

async function waitFor(condition, what, timeoutMs = 5_000) {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
