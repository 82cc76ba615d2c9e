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
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { fromServiceError, InternalError } = require('./errors');

const PROTO_FILE = 'notify/v1/notification_service.proto';
const DEFAULTS = {
  timeoutMs: 10_000, // a Send's vendor call with the gateway's own retries fits comfortably
  uploadTimeoutMs: 120_000, // 20 MB at a modest uplink, plus the vendor's upload
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
   * @param {number} [options.timeoutMs] deadline of each Send/Recall attempt
   * @param {number} [options.uploadTimeoutMs] deadline of each upload attempt
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

module.exports = { NotifyClient, loadService, resolveProtosDir };
