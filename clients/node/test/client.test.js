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
const { status } = require('@grpc/grpc-js');

const {
  NotifyClient,
  InvalidArgumentError,
  NotFoundError,
  RateLimitedError,
  UnauthenticatedError,
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
    // The gateway retries a 502 itself (3 attempts); three of them make it answer UNAVAILABLE.
    await injectFault(gateway.sandbox, { channel: 'wecom_robot', robot: 'team-wecom', http_status: 502, times: 3 });
    const before = (await received(gateway.sandbox, { channel: 'wecom_robot', robot: 'team-wecom', delivered: true })).length;
    const retries = [];
    const retrying = new NotifyClient(gateway.address, {
      apiKey: gateway.apiKey,
      insecure: true,
      retry: { ...FAST_RETRY, onRetry: (event) => retries.push(event) },
    });
    try {
      const response = await retrying.sendText('team-wecom', 'after a hiccup');
      assert.equal(response.state, 'MESSAGE_STATE_SENT');
      assert.equal(retries.length, 1);
      assert.equal(retries[0].error.code, status.UNAVAILABLE);
      assert.equal(retries[0].error.metadata.http_status, '502');
      const replay = await retrying.sendText('team-wecom', 'after a hiccup', { idempotencyKey: retries[0].idempotencyKey });
      assert.equal(replay.duplicate, true, 'the retry carried the key the first attempt had');
      assert.equal(replay.messageId, response.messageId);
    } finally {
      retrying.close();
    }
    const delivered = await received(gateway.sandbox, { channel: 'wecom_robot', robot: 'team-wecom', delivered: true });
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
