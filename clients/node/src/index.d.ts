// Type declarations for @notify-gateway/client. Messages follow proto-loader's mapping of
// protos/notify/v1/notification_service.proto: camelCase fields, enums as their names, uint64 as number.

import type { ServiceClientConstructor } from '@grpc/grpc-js';

export type MessageState =
  | 'MESSAGE_STATE_UNSPECIFIED'
  | 'MESSAGE_STATE_ACCEPTED'
  | 'MESSAGE_STATE_SENT'
  | 'MESSAGE_STATE_RECALLED'
  | 'MESSAGE_STATE_FAILED';
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

export interface UploadMediaResponse {
  mediaId: string;
  type: MediaType;
  size: number;
  sha256: string;
  expiresAt: { seconds: number; nanos: number } | null;
  reused: boolean;
}

export interface RetryEvent {
  method: 'Send' | 'Recall' | 'UploadMedia';
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
