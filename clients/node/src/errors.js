'use strict';
// Typed errors for the gateway's failures, with the google.rpc details of the
// `grpc-status-details-bin` trailer decoded, so JavaScript callers read
// `err.violations['message.text.content']` or `err.retryDelayMs` instead of parsing protobuf.
//
// google.rpc.Status / BadRequest / ErrorInfo / RetryInfo are decoded with protobufjs from the
// .proto files vendored in ../protos/google/rpc (Apache-2.0, from googleapis); Any and Duration
// come with protobufjs itself.

const path = require('node:path');
const protobuf = require('protobufjs');
const { status: Status } = require('@grpc/grpc-js');

const STATUS_DETAILS_KEY = 'grpc-status-details-bin';

const rpcRoot = new protobuf.Root();
rpcRoot.resolvePath = (origin, target) => {
  // google/protobuf/* resolve to protobufjs's bundled copies; google/rpc/* to ours.
  if (target.startsWith('google/protobuf/')) return target;
  return path.join(__dirname, '..', 'protos', target);
};
rpcRoot.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto']);
const StatusProto = rpcRoot.lookupType('google.rpc.Status');

const CODE_NAMES = Object.fromEntries(Object.entries(Status).map(([name, code]) => [code, name]));

/** Base of every error the client raises for a failed call. */
class NotifyError extends Error {
  constructor(message, fields = {}) {
    super(message);
    this.name = this.constructor.name;
    /** gRPC status code (number) and its name. */
    this.code = fields.code ?? Status.UNKNOWN;
    this.codeName = CODE_NAMES[this.code] ?? String(this.code);
    /** The status message, for people. */
    this.details = fields.details ?? message;
    /** ErrorInfo: a stable machine-readable cause, its domain, and metadata (account, channel...). */
    this.reason = fields.reason ?? '';
    this.domain = fields.domain ?? '';
    this.metadata = fields.metadata ?? {};
    /** BadRequest field violations: field path -> description. */
    this.violations = fields.violations ?? {};
    /** RetryInfo.retry_delay in milliseconds, or null. */
    this.retryDelayMs = fields.retryDelayMs ?? null;
    /** The decoded google.rpc.Status, for details not lifted out here. */
    this.status = fields.status ?? null;
    /** The idempotency key a failed Send carried: retry later with it to deliver once. */
    this.idempotencyKey = null;
    if (fields.cause) this.cause = fields.cause;
  }

  /** The vendor's errcode (WeCom/DingTalk) when the vendor refused, else null. */
  get vendorErrcode() {
    const raw = this.metadata.vendor_errcode;
    return raw === undefined ? null : Number(raw);
  }

  /** The vendor's errmsg (credentials removed by the gateway), else null. */
  get vendorErrmsg() {
    return this.metadata.vendor_errmsg ?? null;
  }

  /**
   * The messageId the error concerns (ErrorInfo metadata `message_id`), else null. After a Send
   * whose outcome is ambiguous (the vendor timed out after the request was written), the message
   * exists and may have been delivered: this id finds it with getMessage or watchMessage.
   */
  get messageId() {
    return this.metadata.message_id || null;
  }

  /**
   * Where that message stands, as its enum name ('MESSAGE_STATE_UNKNOWN': it may have been
   * delivered, and a retry with the same idempotency key answers its state instead of sending
   * again), else null.
   */
  get messageState() {
    return this.metadata.message_state || null;
  }

  /** True when WeCom or DingTalk refused (whatever the status). */
  get isVendorError() {
    return this.reason.startsWith('VENDOR_') || 'vendor_errcode' in this.metadata;
  }
}

class InvalidArgumentError extends NotifyError {}
class NotFoundError extends NotifyError {}
class PermissionDeniedError extends NotifyError {}
class UnauthenticatedError extends NotifyError {}
class FailedPreconditionError extends NotifyError {}
/** RESOURCE_EXHAUSTED: a rate limit or quota; `retryDelayMs` says when to come back. */
class RateLimitedError extends NotifyError {}
class UnavailableError extends NotifyError {}
class DeadlineExceededError extends NotifyError {}
class AbortedError extends NotifyError {}
class UnimplementedError extends NotifyError {}
class CancelledError extends NotifyError {}
class InternalError extends NotifyError {}

const BY_CODE = {
  [Status.INVALID_ARGUMENT]: InvalidArgumentError,
  [Status.NOT_FOUND]: NotFoundError,
  [Status.PERMISSION_DENIED]: PermissionDeniedError,
  [Status.UNAUTHENTICATED]: UnauthenticatedError,
  [Status.FAILED_PRECONDITION]: FailedPreconditionError,
  [Status.RESOURCE_EXHAUSTED]: RateLimitedError,
  [Status.UNAVAILABLE]: UnavailableError,
  [Status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [Status.ABORTED]: AbortedError,
  [Status.UNIMPLEMENTED]: UnimplementedError,
  [Status.CANCELLED]: CancelledError,
  [Status.INTERNAL]: InternalError,
  [Status.UNKNOWN]: InternalError,
  [Status.DATA_LOSS]: InternalError,
};

/** Decodes google.rpc.Status bytes into {status, violations, reason, domain, metadata, retryDelayMs}. */
function decodeStatusDetails(bytes) {
  const status = StatusProto.decode(bytes);
  const found = { status, violations: {}, reason: '', domain: '', metadata: {}, retryDelayMs: null };
  for (const any of status.details) {
    // protobufjs's bundled Any keeps the proto's field name, type_url.
    const url = any.type_url || any.typeUrl || '';
    const typeName = url.slice(url.lastIndexOf('/') + 1);
    const type = typeName ? rpcRoot.lookup(typeName) : null;
    if (!(type instanceof protobuf.Type)) continue; // unknown detail: kept in `status`, not lifted out
    const detail = type.decode(any.value);
    if (typeName === 'google.rpc.BadRequest') {
      for (const v of detail.fieldViolations) {
        const seen = found.violations[v.field];
        found.violations[v.field] = seen === undefined ? v.description : `${seen}; ${v.description}`;
      }
    } else if (typeName === 'google.rpc.ErrorInfo') {
      found.reason = detail.reason;
      found.domain = detail.domain;
      found.metadata = { ...detail.metadata };
    } else if (typeName === 'google.rpc.RetryInfo' && detail.retryDelay) {
      const seconds = Number(detail.retryDelay.seconds || 0);
      found.retryDelayMs = seconds * 1000 + Math.round((detail.retryDelay.nanos || 0) / 1e6);
    }
  }
  return found;
}

/** The typed error for a grpc-js ServiceError (code, details, trailing metadata). */
function fromServiceError(error) {
  if (error instanceof NotifyError) return error;
  const code = typeof error.code === 'number' ? error.code : Status.UNKNOWN;
  const details = error.details ?? error.message ?? '';
  let decoded = {};
  const raw = error.metadata?.get?.(STATUS_DETAILS_KEY)?.[0];
  if (raw) {
    try {
      decoded = decodeStatusDetails(Buffer.isBuffer(raw) ? raw : Buffer.from(raw));
    } catch {
      decoded = {}; // a malformed trailer must not hide the status itself
    }
  }
  const Cls = BY_CODE[code] ?? NotifyError;
  const label = CODE_NAMES[code] ?? String(code);
  return new Cls(`${label}: ${details}${decoded.reason ? ` [${decoded.reason}]` : ''}`, {
    code,
    details,
    ...decoded,
    cause: error,
  });
}

module.exports = {
  STATUS_DETAILS_KEY,
  NotifyError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  FailedPreconditionError,
  RateLimitedError,
  UnavailableError,
  DeadlineExceededError,
  AbortedError,
  UnimplementedError,
  CancelledError,
  InternalError,
  decodeStatusDetails,
  fromServiceError,
};
