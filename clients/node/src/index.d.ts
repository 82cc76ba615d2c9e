// Type declarations for @notify-gateway/client. Messages follow proto-loader's mapping of
// protos/notify/v1/notification_service.proto: camelCase fields, enums as their names, uint64 as number.

import type { ServiceClientConstructor } from '@grpc/grpc-js';

export type MessageState =
  | 'MESSAGE_STATE_UNSPECIFIED'
  | 'MESSAGE_STATE_ACCEPTED'
  | 'MESSAGE_STATE_SENT'
  | 'MESSAGE_STATE_RECALLED'
  | 'MESSAGE_STATE_FAILED'
  | 'MESSAGE_STATE_SENDING'
  | 'MESSAGE_STATE_DELIVERED'
  | 'MESSAGE_STATE_UNKNOWN'
  | 'MESSAGE_STATE_EXPIRED';
/** A state for a filter: its enum name, or the name without the prefix in any case ('sent', 'DELIVERED'). */
export type MessageStateName =
  | MessageState
  | 'accepted'
  | 'sending'
  | 'sent'
  | 'delivered'
  | 'recalled'
  | 'failed'
  | 'unknown'
  | 'expired'
  | (string & {});
export type MediaType = 'MEDIA_TYPE_IMAGE' | 'MEDIA_TYPE_VOICE' | 'MEDIA_TYPE_VIDEO' | 'MEDIA_TYPE_FILE';
export type MediaTypeName = 'image' | 'voice' | 'video' | 'file' | MediaType;

export interface Recipients {
  userIds?: string[];
  departmentIds?: string[];
  tagIds?: string[];
  mobiles?: string[];
  all?: boolean;
}

export interface SendOptions {
  safe?: string;
  enableIdTrans?: boolean;
  enableDuplicateCheck?: boolean;
  duplicateCheckIntervalSeconds?: number;
  waitForRateLimit?: boolean;
}

/** One kind of Message: { text: {content} }, { markdown: {...} }, { textCard: {...} }... */
export type Message = Record<string, unknown>;

export interface SendRequest {
  account: string;
  message: Message;
  recipients?: Recipients;
  idempotencyKey?: string;
  labels?: Record<string, string>;
  options?: SendOptions;
}

export interface SendResponse {
  messageId: string;
  state: MessageState;
  vendorMessageId: string;
  rejectedRecipients: { kind: string; id: string; reason: string }[];
  recallable: boolean;
  duplicate: boolean;
}

export interface RecallResponse {
  messageId: string;
  state: MessageState;
}

/** google.protobuf.Timestamp as proto-loader gives it. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

export interface UploadMediaResponse {
  mediaId: string;
  type: MediaType;
  size: number;
  sha256: string;
  expiresAt: Timestamp | null;
  reused: boolean;
}

export type DeliveryOutcome =
  | 'OUTCOME_UNSPECIFIED'
  | 'OUTCOME_ACCEPTED'
  | 'OUTCOME_REFUSED'
  | 'OUTCOME_NOT_SENT'
  | 'OUTCOME_AMBIGUOUS';

/** One vendor call made to deliver a message. */
export interface DeliveryAttempt {
  startTime: Timestamp | null;
  outcome: DeliveryOutcome;
  httpStatus: number;
  vendorErrcode: number;
  vendorErrmsg: string;
  detail: string;
  durationMs: number;
}

export interface StateChange {
  state: MessageState;
  time: Timestamp | null;
  reason: string;
}

/** The vendor's delivery report (DingTalk work notifications). */
export interface DeliveryReport {
  readUserIds: string[];
  unreadUserIds: string[];
  failedUserIds: string[];
  forbiddenUserIds: string[];
  invalidUserIds: string[];
  invalidDepartmentIds: string[];
  reportTime: Timestamp | null;
}

/** The gateway's record of one message. */
export interface MessageRecord {
  messageId: string;
  tenant: string;
  account: string;
  channel: string;
  kind: string;
  state: MessageState;
  /** No further change is expected (a Recall may still follow SENT or DELIVERED). */
  final: boolean;
  vendorMessageId: string;
  rejectedRecipients: { kind: string; id: string; reason: string }[];
  labels: Record<string, string>;
  idempotencyKey: string;
  createTime: Timestamp | null;
  updateTime: Timestamp | null;
  attempts: DeliveryAttempt[];
  history: StateChange[];
  deliveryReport: DeliveryReport | null;
  recallable: boolean;
}

/** A time for a filter: a Date, milliseconds since the epoch, or a Timestamp. */
export type TimeInput = Date | number | Timestamp;

export interface ListMessagesFilter {
  account?: string;
  /** Any of these states. */
  states?: MessageStateName | MessageStateName[];
  /** Every one of these labels, with these values. */
  labels?: Record<string, string>;
  /** Created at or after. */
  startTime?: TimeInput;
  /** Created before. */
  endTime?: TimeInput;
  /** Default 50, at most 500. */
  pageSize?: number;
  /** The previous page's nextPageToken (with the same filter). */
  pageToken?: string;
}

export interface ListMessagesResponse {
  /** Newest first. */
  messages: MessageRecord[];
  /** Empty on the last page; a short page may still have a next one. */
  nextPageToken: string;
}

/** A watchMessage in progress: iterate it for records; cancel() ends it quietly. */
export declare class MessageWatch implements AsyncIterable<MessageRecord> {
  cancel(): void;
  [Symbol.asyncIterator](): AsyncGenerator<MessageRecord, void, undefined>;
}

export interface RetryEvent {
  method: 'Send' | 'Recall' | 'UploadMedia' | 'GetMessage' | 'ListMessages' | 'WatchMessage';
  attempt: number;
  delayMs: number;
  error: NotifyError;
  idempotencyKey: string | null;
}

export interface RetryOptions {
  maxAttempts?: number;
  initialBackoffMs?: number;
  multiplier?: number;
  maxBackoffMs?: number;
  maxTotalMs?: number;
  onRetry?: ((event: RetryEvent) => void) | null;
}

export interface ClientOptions {
  apiKey?: string;
  insecure?: boolean;
  rootCerts?: Buffer;
  privateKey?: Buffer;
  certChain?: Buffer;
  serverName?: string;
  timeoutMs?: number;
  uploadTimeoutMs?: number;
  watchTimeoutMs?: number;
  chunkSize?: number;
  retry?: RetryOptions;
  channelOptions?: Record<string, unknown>;
  protosDir?: string;
}

export interface SendHelperOptions {
  recipients?: Recipients;
  labels?: Record<string, string>;
  options?: SendOptions;
  idempotencyKey?: string;
  timeoutMs?: number;
}

export interface UploadInfo {
  account: string;
  type: MediaTypeName;
  filename?: string;
  contentType?: string;
  size?: number;
}

export declare class NotifyClient {
  constructor(address: string, options?: ClientOptions);
  timeoutMs: number;
  uploadTimeoutMs: number;
  watchTimeoutMs: number;
  chunkSize: number;
  close(): void;
  send(request: SendRequest, options?: { timeoutMs?: number }): Promise<SendResponse>;
  sendText(account: string, content: string, options?: SendHelperOptions): Promise<SendResponse>;
  sendMarkdown(
    account: string,
    content: string,
    options?: SendHelperOptions & { title?: string; dialect?: string },
  ): Promise<SendResponse>;
  recall(messageId: string, options?: { timeoutMs?: number }): Promise<RecallResponse>;
  uploadMedia(
    upload: UploadInfo & ({ file: string; chunks?: never } | { chunks: Iterable<Buffer> | AsyncIterable<Buffer>; file?: never }),
    options?: { timeoutMs?: number; chunkSize?: number },
  ): Promise<UploadMediaResponse>;
  uploadFile(
    account: string,
    file: string,
    type: MediaTypeName,
    options?: { filename?: string; contentType?: string; timeoutMs?: number; chunkSize?: number },
  ): Promise<UploadMediaResponse>;
  getMessage(messageId: string, options?: { timeoutMs?: number }): Promise<MessageRecord>;
  listMessages(filter?: ListMessagesFilter, options?: { timeoutMs?: number }): Promise<ListMessagesResponse>;
  iterMessages(
    filter?: Omit<ListMessagesFilter, 'pageToken'>,
    options?: { timeoutMs?: number },
  ): AsyncGenerator<MessageRecord, void, undefined>;
  watchMessage(messageId: string, options?: { timeoutMs?: number }): MessageWatch;
}

export declare class NotifyError extends Error {
  code: number;
  codeName: string;
  details: string;
  reason: string;
  domain: string;
  metadata: Record<string, string>;
  violations: Record<string, string>;
  retryDelayMs: number | null;
  status: unknown;
  idempotencyKey: string | null;
  readonly vendorErrcode: number | null;
  readonly vendorErrmsg: string | null;
  readonly isVendorError: boolean;
  /** ErrorInfo metadata message_id: the message an ambiguous Send recorded. */
  readonly messageId: string | null;
  /** ErrorInfo metadata message_state, e.g. 'MESSAGE_STATE_UNKNOWN'. */
  readonly messageState: MessageState | null;
}
export declare class InvalidArgumentError extends NotifyError {}
export declare class NotFoundError extends NotifyError {}
export declare class PermissionDeniedError extends NotifyError {}
export declare class UnauthenticatedError extends NotifyError {}
export declare class FailedPreconditionError extends NotifyError {}
export declare class RateLimitedError extends NotifyError {}
export declare class UnavailableError extends NotifyError {}
export declare class DeadlineExceededError extends NotifyError {}
export declare class AbortedError extends NotifyError {}
export declare class UnimplementedError extends NotifyError {}
export declare class CancelledError extends NotifyError {}
export declare class InternalError extends NotifyError {}

export declare const STATUS_DETAILS_KEY: 'grpc-status-details-bin';
export declare function decodeStatusDetails(bytes: Uint8Array): {
  status: unknown;
  violations: Record<string, string>;
  reason: string;
  domain: string;
  metadata: Record<string, string>;
  retryDelayMs: number | null;
};
export declare function fromServiceError(error: unknown): NotifyError;
export declare function loadService(protosDir?: string): ServiceClientConstructor;
export declare function resolveProtosDir(protosDir?: string): string;
/** The ListMessagesRequest a filter becomes (states as enum names, times as Timestamps). */
export declare function listMessagesRequest(filter?: ListMessagesFilter): Record<string, unknown>;
/** A MessageState from 'sent', 'SENT' or 'MESSAGE_STATE_SENT'; throws TypeError for anything else. */
export declare function messageState(state: MessageStateName): MessageState;
