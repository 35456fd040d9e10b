// Package sqs will hold spool's Amazon SQS-compatible endpoint (issue 17):
// the AWS JSON 1.0 and query protocols on the main listener, mapped onto
// spool's queues.
//
// So far it owns the two pieces that must match AWS bit for bit and can be
// tested on their own:
//
//   - sigv4.go: verification of AWS Signature Version 4 on incoming requests,
//     used when --sqs-keys is configured;
//   - md5.go: MD5OfMessageBody and MD5OfMessageAttributes as SQS computes
//     them, which the SDKs check on every send and receive.
//
// The request decoders, handlers and error replies come next and build on
// these.
package sqs
