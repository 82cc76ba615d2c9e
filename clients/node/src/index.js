'use strict';
// @notify-gateway/client: call notify-gateway (notify.v1.NotificationService) from Node.js.
//
//   const { NotifyClient, InvalidArgumentError } = require('@notify-gateway/client');
//   const client = new NotifyClient('gateway:50051', { apiKey, rootCerts: fs.readFileSync('ca.pem') });
//   const { messageId } = await client.sendText('ops-dingtalk', 'deploy finished');

const { NotifyClient, MessageWatch, loadService, resolveProtosDir, listMessagesRequest, messageState } = require('./client');
const errors = require('./errors');

module.exports = { NotifyClient, MessageWatch, loadService, resolveProtosDir, listMessagesRequest, messageState, ...errors };
