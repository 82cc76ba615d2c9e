'use strict';
// @notify-gateway/client: call notify-gateway (notify.v1.NotificationService) from Node.js.
//
//   const { NotifyClient, InvalidArgumentError } = require('@notify-gateway/client');
//   const client = new NotifyClient('gateway:50051', { apiKey, rootCerts: fs.readFileSync('ca.pem') });
//   const { messageId } = await client.sendText('ops-dingtalk', 'deploy finished');

const { NotifyClient, MessageWatch, loadService, resolveProtosDir, listMessagesRequest, messageState } = require('./client');
const {
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
} = require('./errors');

// Every name listed literally (no spread), so Node's CommonJS named-export detection sees them and
// `import { NotifyClient, InvalidArgumentError } from '@notify-gateway/client'` works from ESM.
module.exports = {
  NotifyClient,
  MessageWatch,
  loadService,
  resolveProtosDir,
  listMessagesRequest,
  messageState,
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
