'use strict';
// NotifyClient: notify.v1.NotificationService from Node.js, on @grpc/grpc-js.
//
// The service definition is loaded at run time by @grpc/proto-loader from the project's own
// protos (no generated code to drift), with proto-loader's defaults for field names: requests and
// responses use camelCase (`idempotencyKey`, `messageId`), enums are their names
// ('MESSAGE_STATE_SENT'), uint64 sizes are numbers.

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { isDeepStrictEqual } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { fromServiceError, DeadlineExceededError, InternalError, UnavailableError } = require('./errors');

const PROTO_FILE = 'notify/v1/notification_service.proto';
const DEFAULTS = {
  timeoutMs: 10_000, // a Send's vendor call with the gateway's own retries fits comfortably
  uploadTimeoutMs: 120_000, // 20 MB at a modest uplink, plus the vendor's upload
  // A watch waits for the vendor, not the gateway: DingTalk reports delivery when the gateway next polls it.
  watchTimeoutMs: 300_000,
  chunkSize: 64 * 1024,
};
const DEFAULT_RETRY = {
  maxAttempts: 4, // attempts in all, the first included; 1 disables retries
  initialBackoffMs: 200,
  multiplier: 2,
  maxBackoffMs: 5_000,
  maxTotalMs: 20_000, // no retry starts whose wait would end later than this after the first attempt
  onRetry: null, // ({method, attempt, delayMs, error, idempotencyKey}) => void
};
const MEDIA_TYPES = { image: 'MEDIA_TYPE_IMAGE', voice: 'MEDIA_TYPE_VOICE', video: 'MEDIA_TYPE_VIDEO', file: 'MEDIA_TYPE_FILE' };
const MESSAGE_STATES = ['accepted', 'sending', 'sent', 'delivered', 'recalled', 'failed', 'unknown', 'expired'];

/**
 * Where the protos are: `protosDir` if given; the copy `npm pack` puts in the package; else the
 * repository's protos/, two levels above this package (clients/node -> protos).
 */
function resolveProtosDir(protosDir) {
  if (protosDir) return protosDir;
  const packaged = path.join(__dirname, '..', 'protos');
  if (fs.existsSync(path.join(packaged, PROTO_FILE))) return packaged;
  return path.resolve(__dirname, '..', '..', '..', 'protos');
}

function loadService(protosDir) {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [resolveProtosDir(protosDir)],
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).notify.v1.NotificationService;
}

function mediaType(type) {
  const key = String(type).toLowerCase().replace(/^media_type_/, '');
  if (!(key in MEDIA_TYPES)) throw new TypeError(`media type ${type} is not one of: ${Object.keys(MEDIA_TYPES).join(', ')}`);
  return MEDIA_TYPES[key];
}

/** A MessageState name from 'sent', 'SENT' or 'MESSAGE_STATE_SENT'. */
function messageState(state) {
  const key = String(state).toLowerCase().replace(/^message_state_/, '');
  if (!MESSAGE_STATES.includes(key)) throw new TypeError(`message state ${state} is not one of: ${MESSAGE_STATES.join(', ')}`);
  return `MESSAGE_STATE_${key.toUpperCase()}`;
}

/** A google.protobuf.Timestamp from a Date, milliseconds since the epoch, or {seconds, nanos}. */
function timestamp(value, name) {
  if (value instanceof Date || typeof value === 'number') {
    const ms = value instanceof Date ? value.getTime() : value;
    if (!Number.isFinite(ms)) throw new TypeError(`${name} is not a valid time`);
    const seconds = Math.floor(ms / 1000);
    return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
  }
  if (value && typeof value === 'object' && 'seconds' in value) return { seconds: Number(value.seconds), nanos: value.nanos ?? 0 };
  throw new TypeError(`${name} must be a Date, milliseconds since the epoch, or {seconds, nanos}`);
}

/**
 * The ListMessagesRequest for a filter; unset parts filter nothing. pageSize goes as given (the
 * gateway defaults it to 50, clamps it to 500 and names it in the error when it is negative).
 */
function listMessagesRequest({ account, states, labels, startTime, endTime, pageSize, pageToken } = {}) {
  const request = {
    pageSize: pageSize ?? 0,
    pageToken: pageToken ?? '',
    account: account ?? '',
    states: (states === undefined || states === null ? [] : [].concat(states)).map(messageState),
    labels: { ...(labels || {}) },
  };
  if (startTime !== undefined && startTime !== null) request.startTime = timestamp(startTime, 'startTime');
  if (endTime !== undefined && endTime !== null) request.endTime = timestamp(endTime, 'endTime');
  return request;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

class NotifyClient {
  /**
   * @param {string} address the gateway, host:port
   * @param {object} [options]
   * @param {string} [options.apiKey] the tenant's API key: call credentials over TLS; plain
   *   per-call metadata over `insecure` (gRPC refuses call credentials on plaintext channels)
   * @param {boolean} [options.insecure] plaintext, for a gateway on loopback in development
   * @param {Buffer} [options.rootCerts] PEM roots to verify the gateway (system roots when absent)
   * @param {Buffer} [options.privateKey] client key, for mTLS
   * @param {Buffer} [options.certChain] client certificate, for mTLS
   * @param {string} [options.serverName] the name to verify the certificate against
   * @param {number} [options.timeoutMs] deadline of each Send/Recall/GetMessage/ListMessages attempt
   * @param {number} [options.uploadTimeoutMs] deadline of each upload attempt
   * @param {number} [options.watchTimeoutMs] deadline of a whole watchMessage
   * @param {number} [options.chunkSize] bytes per upload chunk
   * @param {object} [options.retry] see DEFAULT_RETRY; {maxAttempts: 1} disables retries
   * @param {object} [options.channelOptions] extra grpc-js channel options
   * @param {string} [options.protosDir] where notify/v1/notification_service.proto lives
   */
  constructor(address, options = {}) {
    if (!address) throw new TypeError('address is required, for example "notify.internal:50051"');
    const Service = loadService(options.protosDir);
    this.timeoutMs = options.timeoutMs ?? DEFAULTS.timeoutMs;
    this.uploadTimeoutMs = options.uploadTimeoutMs ?? DEFAULTS.uploadTimeoutMs;
    this.watchTimeoutMs = options.watchTimeoutMs ?? DEFAULTS.watchTimeoutMs;
    this.chunkSize = options.chunkSize ?? DEFAULTS.chunkSize;
    this.retry = { ...DEFAULT_RETRY, ...(options.retry || {}) };
    this._metadata = new grpc.Metadata();
    let credentials;
    if (options.insecure) {
      credentials = grpc.credentials.createInsecure();
      if (options.apiKey) this._metadata.set('authorization', `Bearer ${options.apiKey}`);
    } else {
      credentials = grpc.credentials.createSsl(options.rootCerts ?? null, options.privateKey ?? null, options.certChain ?? null);
      if (options.apiKey) {
        const apiKey = options.apiKey;
        const callCredentials = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
          const metadata = new grpc.Metadata();
          metadata.set('authorization', `Bearer ${apiKey}`);
          callback(null, metadata);
        });
        credentials = grpc.credentials.combineChannelCredentials(credentials, callCredentials);
      }
    }
    const channelOptions = { 'grpc.primary_user_agent': 'notify-client-node/0.1.0', ...(options.channelOptions || {}) };
    if (options.serverName) channelOptions['grpc.ssl_target_name_override'] = options.serverName;
    this._stub = new Service(address, credentials, channelOptions);
  }

  close() {
    this._stub.close();
  }

  // -- raw calls ---------------------------------------------------------------------------------

  /**
   * Sends one SendRequest (camelCase fields). Retried on UNAVAILABLE and RESOURCE_EXHAUSTED under
   * one idempotency key: the request's own, else one generated here and kept by every retry, so a
   * retry never delivers twice. A failure rejects with a NotifyError carrying `idempotencyKey`.
   *
   * When the vendor may or may not have delivered (it timed out after the request was written),
   * the gateway records the message as MESSAGE_STATE_UNKNOWN and never sends it again under that
   * key: the first attempt fails UNAVAILABLE (`error.messageId`, `error.messageState` say so) and
   * the retry resolves with `duplicate: true` and `state: 'MESSAGE_STATE_UNKNOWN'`. So check
   * `state`: UNKNOWN means "possibly delivered, never twice". (DingTalk robots are the exception the
   * gateway can resend, since that vendor drops repeats of the same msgUuid.)
   */
  async send(request, { timeoutMs } = {}) {
    const keyed = { ...request, idempotencyKey: request.idempotencyKey || crypto.randomUUID().replace(/-/g, '') };
    try {
      return await this._withRetries('Send', () => this._unary('Send', keyed, timeoutMs ?? this.timeoutMs), keyed.idempotencyKey);
    } catch (error) {
      error.idempotencyKey = keyed.idempotencyKey;
      throw error;
    }
  }

  /** Withdraws a message by the gateway's messageId (app channels); retried like send. */
  recall(messageId, { timeoutMs } = {}) {
    return this._withRetries('Recall', () => this._unary('Recall', { messageId }, timeoutMs ?? this.timeoutMs), null);
  }

  /**
   * Streams an upload: `info` ({account, type, filename, contentType?, size?}) then the bytes of
   * `file` (a path, read in chunks, never whole) or of `chunks` (an iterable or async iterable of
   * Buffers). From a file it is retried like send (the file can be read again); chunks cannot be
   * replayed, so that form is not retried.
   */
  async uploadMedia({ file, chunks, ...info }, { timeoutMs, chunkSize } = {}) {
    if ((file === undefined) === (chunks === undefined)) throw new TypeError('give exactly one of: file (a path) or chunks');
    const fullInfo = { ...info, type: mediaType(info.type) };
    const deadline = timeoutMs ?? this.uploadTimeoutMs;
    if (chunks !== undefined) return this._upload(fullInfo, () => chunks, deadline).catch((e) => Promise.reject(fromServiceError(e)));
    const size = chunkSize ?? this.chunkSize;
    const stat = await fs.promises.stat(file);
    fullInfo.filename = fullInfo.filename || path.basename(file);
    fullInfo.size = fullInfo.size || stat.size; // declared: an oversized file is refused before any chunk
    return this._withRetries('UploadMedia', () => this._upload(fullInfo, () => fs.createReadStream(file, { highWaterMark: size }), deadline), null);
  }

  // -- message records ---------------------------------------------------------------------------

  /**
   * What the gateway knows of one message (its MessageRecord: state, vendor attempts, delivery
   * report): how an ambiguous Send ended, whether a DingTalk work notification was read. Another
   * tenant's messageId is NotFoundError, as an unknown one is. A read: retried like send.
   */
  async getMessage(messageId, { timeoutMs } = {}) {
    const response = await this._withRetries('GetMessage', () => this._unary('GetMessage', { messageId }, timeoutMs ?? this.timeoutMs), null);
    return response.message;
  }

  /**
   * One page of the tenant's messages, newest first: {messages, nextPageToken}. Filter fields
   * combine: account; states (any of them: 'sent', 'MESSAGE_STATE_DELIVERED'...); labels (every
   * one); startTime (inclusive) and endTime (exclusive) as Dates; pageSize (default 50, at most
   * 500); pageToken, the previous page's nextPageToken with the same filter. A page may be short
   * and still have a next one: stop only on an empty token (iterMessages does all that).
   */
  listMessages(filter = {}, { timeoutMs } = {}) {
    return this._listPage(listMessagesRequest(filter), timeoutMs);
  }

  /** Every message matching `filter` (as listMessages, pageToken aside), page after page as iteration reaches them. */
  async *iterMessages(filter = {}, { timeoutMs } = {}) {
    let request = listMessagesRequest({ ...filter, pageToken: undefined });
    for (;;) {
      const page = await this._listPage(request, timeoutMs);
      yield* page.messages;
      if (!page.nextPageToken) return;
      request = { ...request, pageToken: page.nextPageToken }; // AIP-158: the same filter, the next token
    }
  }

  /**
   * Follows one message: `for await (const record of client.watchMessage(id)) ...` yields its
   * record now, then at each change, and ends after the record whose `final` is true. When
   * `timeoutMs` (the whole watch; default watchTimeoutMs) passes first, iteration rejects with
   * DeadlineExceededError, the last record yielded being where the message stood. A broken stream
   * is reopened per the retry options (a watch is a read) without yielding a record twice.
   * `watch.cancel()` (or leaving the loop) ends the call; iteration then ends quietly.
   */
  watchMessage(messageId, { timeoutMs } = {}) {
    return new MessageWatch(this, messageId, timeoutMs ?? this.watchTimeoutMs);
  }

  // -- helpers -----------------------------------------------------------------------------------

  /** Plain text; for robots `recipients` are @-mentioned, for app channels they receive it. */
  sendText(account, content, { recipients, labels, options, idempotencyKey, timeoutMs } = {}) {
    return this.send({ account, message: { text: { content } }, recipients, labels, options, idempotencyKey }, { timeoutMs });
  }

  /** Markdown in the vendor's subset; DingTalk requires `title`. */
  sendMarkdown(account, content, { title = '', dialect, recipients, labels, options, idempotencyKey, timeoutMs } = {}) {
    const markdown = { title, content, ...(dialect ? { dialect } : {}) };
    return this.send({ account, message: { markdown }, recipients, labels, options, idempotencyKey }, { timeoutMs });
  }

  /** Uploads a file from disk; `type` is 'image' | 'voice' | 'video' | 'file'. */
  uploadFile(account, file, type, { filename, contentType, timeoutMs, chunkSize } = {}) {
    return this.uploadMedia({ account, type, filename, contentType, file }, { timeoutMs, chunkSize });
  }

  // -- machinery ---------------------------------------------------------------------------------

  _listPage(request, timeoutMs) {
    return this._withRetries('ListMessages', () => this._unary('ListMessages', request, timeoutMs ?? this.timeoutMs), null);
  }

  _callOptions(timeoutMs) {
    return { deadline: new Date(Date.now() + timeoutMs) };
  }

  _unary(method, request, timeoutMs) {
    return new Promise((resolve, reject) => {
      this._stub[method](request, this._metadata.clone(), this._callOptions(timeoutMs), (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  }

  /**
   * One upload stream. Writes respect backpressure and stop as soon as the call ends: when the
   * gateway refuses early (bad info, wrong key), its status is what the caller gets.
   */
  _upload(info, openChunks, timeoutMs) {
    return new Promise((resolve, reject) => {
      let ended = false;
      const call = this._stub.UploadMedia(this._metadata.clone(), this._callOptions(timeoutMs), (error, response) => {
        ended = true;
        if (error) reject(error);
        else resolve(response);
      });
      const pump = async () => {
        const source = openChunks();
        try {
          if (!call.write({ info })) await waitForDrain(call, () => ended);
          for await (const chunk of source) {
            if (ended) break;
            if (!call.write({ chunk })) await waitForDrain(call, () => ended);
          }
        } finally {
          if (typeof source.destroy === 'function') source.destroy();
        }
        if (!ended) call.end();
      };
      pump().catch((error) => {
        if (!ended) {
          call.cancel();
          ended = true;
          reject(new InternalError(`reading the upload failed: ${error.message}`, { cause: error }));
        }
      });
    });
  }

  async _withRetries(method, attempt, idempotencyKey) {
    const started = Date.now();
    for (let number = 1; ; number += 1) {
      let error;
      try {
        return await attempt();
      } catch (raw) {
        error = fromServiceError(raw);
      }
      const delayMs = this._delayBeforeRetry(error, number, Date.now() - started);
      if (delayMs === null) throw error;
      if (this.retry.onRetry) this.retry.onRetry({ method, attempt: number, delayMs, error, idempotencyKey });
      await sleep(delayMs);
    }
  }

  /** Milliseconds to wait before another attempt, or null to give up (same rules as the Python client). */
  _delayBeforeRetry(error, attempt, elapsedMs) {
    const r = this.retry;
    if (attempt >= r.maxAttempts) return null;
    let delayMs;
    if (error.code === grpc.status.RESOURCE_EXHAUSTED && error.retryDelayMs !== null) {
      // Never sooner than the server asks; a little later, so clients told the same do not return together.
      delayMs = error.retryDelayMs + Math.min(1000, 0.1 * error.retryDelayMs) * Math.random();
    } else if (
      error.code === grpc.status.UNAVAILABLE ||
      error.code === grpc.status.RESOURCE_EXHAUSTED ||
      (error.code === grpc.status.ABORTED && error.reason === 'IDEMPOTENCY_KEY_IN_PROGRESS')
    ) {
      const ceiling = Math.min(r.maxBackoffMs, r.initialBackoffMs * r.multiplier ** (attempt - 1));
      delayMs = ceiling * (0.5 + Math.random() / 2);
    } else {
      return null;
    }
    return elapsedMs + delayMs > r.maxTotalMs ? null : delayMs;
  }
}

/**
 * A watchMessage in progress: an async iterable of MessageRecords that can be cancelled.
 *
 * Each stream the watch opens starts with the record as it stands; after a reopen that is usually
 * the record already yielded, which is skipped, so the caller sees every change once. The retry
 * count starts again whenever a record arrives, so breaks long past do not wear a watch down.
 */
class MessageWatch {
  constructor(client, messageId, timeoutMs) {
    this._client = client;
    this._messageId = messageId;
    this._timeoutMs = timeoutMs;
    this._call = null;
    this._cancelled = false;
    this._records = null;
  }

  /** Ends the watch: the call is cancelled on the gateway and iteration ends without an error. */
  cancel() {
    this._cancelled = true;
    if (this._call) this._call.cancel();
  }

  [Symbol.asyncIterator]() {
    if (!this._records) this._records = this._run();
    return this._records;
  }

  async *_run() {
    const client = this._client;
    const deadline = Date.now() + this._timeoutMs;
    let last = null;
    let failures = 0;
    let since = Date.now();
    for (;;) {
      if (this._cancelled) return;
      if (deadline - Date.now() <= 0) throw timedOut(last);
      const call = client._stub.WatchMessage({ messageId: this._messageId }, client._metadata.clone(), { deadline: new Date(deadline) });
      this._call = call;
      let error;
      try {
        for await (const response of call) {
          const record = response.message;
          if (!isDeepStrictEqual(record, last)) {
            last = record;
            failures = 0;
            since = Date.now();
            yield record;
          }
          if (record.final) return;
        }
        // The gateway ends the stream at the caller's deadline; with time left it was interrupted.
        if (deadline - Date.now() <= 50) throw timedOut(last);
        error = new UnavailableError('UNAVAILABLE: the watch ended before the message reached a final state', {
          code: grpc.status.UNAVAILABLE,
        });
      } catch (raw) {
        if (this._cancelled) return;
        if (raw instanceof DeadlineExceededError) throw raw;
        error = fromServiceError(raw);
      } finally {
        this._call = null;
        call.cancel(); // a no-op once the stream has ended; stops it when the caller left the loop
      }
      if (this._cancelled) return;
      if (error.code === grpc.status.DEADLINE_EXCEEDED) throw timedOut(last, error);
      failures += 1;
      const delayMs = client._delayBeforeRetry(error, failures, Date.now() - since);
      if (delayMs === null || delayMs >= deadline - Date.now()) throw error;
      if (client.retry.onRetry) client.retry.onRetry({ method: 'WatchMessage', attempt: failures, delayMs, error, idempotencyKey: null });
      await sleep(delayMs);
    }
  }
}

function timedOut(last, cause) {
  const state = last ? last.state : 'not yet read';
  const details = `the watch's deadline passed before a final state (last state: ${state})`;
  return new DeadlineExceededError(`DEADLINE_EXCEEDED: ${details}`, { code: grpc.status.DEADLINE_EXCEEDED, details, cause });
}

function waitForDrain(call, isEnded) {
  return new Promise((resolve) => {
    if (isEnded()) return resolve();
    const done = () => {
      call.off('drain', done);
      call.off('status', done);
      call.off('error', done);
      resolve();
    };
    call.on('drain', done);
    call.on('status', done);
    call.on('error', done);
  });
}

module.exports = { NotifyClient, MessageWatch, loadService, resolveProtosDir, listMessagesRequest, messageState };
