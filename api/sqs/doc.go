// Package sqs is spool's Amazon SQS-compatible endpoint: the aws CLI,
// boto3 and the AWS SDKs work against a spool server unchanged. It is a
// thin translation onto package queue, served on the main listener
// (IsRequest says which requests are its).
//
// Both wire protocols: AWS JSON 1.0 (X-Amz-Target: AmazonSQS.<Action>,
// what botocore ≥ 1.31, the current aws CLI and SDKs speak) and the query
// protocol (Action= form posts with XML replies, what older botocore and
// the aws CLI 2.9 of Debian 12 speak). A request in either is decoded into
// the same struct (protocol.go), so each action is written once.
//
// Files:
//
//   - handler.go: Config, the request's life (body limit, SigV4, decode,
//     dispatch, reply or error in the request's protocol);
//   - queues.go: queue actions and queue attributes;
//   - messages.go: message actions, message attributes;
//   - movetasks.go: message move tasks (a dead-letter queue's redrive);
//   - fifo.go: FIFO queues: groups, deduplication, SequenceNumber;
//   - errors.go: SQS's error codes and how spool's errors map onto them;
//   - sigv4.go: AWS Signature Version 4 verification (--sqs-keys);
//   - md5.go: MD5OfMessageBody and MD5OfMessageAttributes, which the SDKs
//     check on every send and receive.
//
// How SQS maps onto spool (the README's SQS section lists what differs
// from Amazon SQS):
//
//   - An SQS queue is the spool queue of the same name; its URL is
//     http(s)://HOST/<account>/<name>, and a URL's last path part is the
//     name whatever host or account it gives. SQS's name rule is a subset
//     of spool's, so every SQS queue name is a spool one.
//   - VisibilityTimeout, DelaySeconds and MessageRetentionPeriod are the
//     queue's visibility timeout, delay and retention; a visibility of 0
//     is the shortest lease spool has (1 ms). RedrivePolicy is max
//     attempts plus a dead-letter queue. A queue CreateQueue makes gets
//     SQS's defaults where the request is silent: no redrive policy means
//     the most attempts spool allows (messages are retried until they
//     expire), and messages are kept 4 days. Access policies and
//     encryption settings are accepted and not kept.
//   - What spool's config has no field for is kept in the queue's
//     attributes (queue.Queue.SetAttributes, in its queue.json), under
//     "sqs:" keys: ReceiveMessageWaitTimeSeconds (a receive's wait when it
//     gives none), MaximumMessageSize (a limit under the server's
//     --max-message-bytes; the lower of the two applies) and the tags
//     ("sqs:tag:<key>"). A setting back at its default is removed.
//   - A message's id is spool's id; its receipt handle is the queue's
//     serial and spool's receipt ("7-42.3"), so a handle given for
//     another queue is ReceiptHandleIsInvalid, as in SQS, instead of
//     naming that queue's message of the same id.
//     SQS message attributes ride in spool's attributes under their own
//     names (a Binary value base64-encoded), so native consumers read
//     them; a type other than String is kept beside under
//     "sqs:type:<name>", and AWSTraceHeader under "sqs:AWSTraceHeader"
//     (SQS names cannot hold a colon, so these never clash).
//   - DeleteMessage succeeds, deleting nothing, for a message that is gone
//     or a handle that is no longer its latest (received again since),
//     as SQS documents. ChangeMessageVisibility extends the lease, or
//     with 0 returns the message to ready at once; for such a handle it
//     is MessageNotInflight.
//   - SendMessageBatch and DeleteMessageBatch are one queue call each, so
//     one fsync; ChangeMessageVisibilityBatch is a call per entry. An
//     entry that fails SQS's checks fails alone.
//   - A message's body must be text SQS allows; one enqueued through
//     another protocol with bytes SQS cannot carry is received with those
//     replaced by U+FFFD (and the MD5 of what was sent).
//   - StartMessageMoveTask redrives a dead-letter queue: its messages go
//     back to the queues they came from, or to a destination
//     (movetasks.go).
//   - A FIFO queue is an ordered spool queue (fifo.go): a message's
//     group is its MessageGroupId, its deduplication key its
//     MessageDeduplicationId (or the body's SHA-256), remembered for five
//     minutes across restarts.
//   - Permissions (AddPermission, RemovePermission) are refused with
//     UnsupportedOperation.
//
// Authentication: with Config.Keys every request must be SigV4-signed by
// one of them; without, any signature (or none) is accepted, and the
// server decides when that is safe (see api.Config.SQSKeys).
package sqs
