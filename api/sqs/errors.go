package sqs

import (
	"errors"
	"fmt"

	"github.com/spoolq/spool/queue"
)

// errorCode is one of SQS's error codes: the shape name AWS JSON 1.0
// replies carry in __type, the code of the query protocol (which the JSON
// protocol repeats in x-amzn-query-error, so query-compatible SDKs report
// the same code either way), its HTTP status and whose fault it is.
type errorCode struct {
	shape     string
	queryCode string
	status    int
	sender    bool // "Sender" (the client's fault) or "Receiver"
}

// The codes spool answers with. The shapes, statuses and query codes are
// those of the SQS API model (aws-sdk-go-v2/service/sqs's schemas); the
// generic ones (InvalidParameterValue, MissingParameter, InvalidAction,
// the signature errors, InternalFailure, ServiceUnavailable) are the
// common errors every query API shares.
var (
	codeQueueDoesNotExist      = errorCode{"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400, true}
	codeQueueNameExists        = errorCode{"QueueNameExists", "QueueAlreadyExists", 400, true}
	codeReceiptHandleIsInvalid = errorCode{"ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 404, true}
	codeMessageNotInflight     = errorCode{"MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", 400, true}
	codeTooManyEntries         = errorCode{"TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, true}
	codeEmptyBatch             = errorCode{"EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", 400, true}
	codeBatchIDsNotDistinct    = errorCode{"BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400, true}
	codeInvalidBatchEntryID    = errorCode{"InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", 400, true}
	codeBatchRequestTooLong    = errorCode{"BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400, true}
	codeInvalidAttributeName   = errorCode{"InvalidAttributeName", "InvalidAttributeName", 400, true}
	codeInvalidAttributeValue  = errorCode{"InvalidAttributeValue", "InvalidAttributeValue", 400, true}
	codeInvalidMessageContents = errorCode{"InvalidMessageContents", "InvalidMessageContents", 400, true}
	codeUnsupportedOperation   = errorCode{"UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", 400, true}
	codeInvalidAddress         = errorCode{"InvalidAddress", "InvalidAddress", 404, true}
	codeOverLimit              = errorCode{"OverLimit", "OverLimit", 403, true}
	codeInvalidParameterValue  = errorCode{"InvalidParameterValue", "InvalidParameterValue", 400, true}
	codeMissingParameter       = errorCode{"MissingParameter", "MissingParameter", 400, true}
	codeInvalidAction          = errorCode{"InvalidAction", "InvalidAction", 400, true}
	codeMissingAuthToken       = errorCode{"MissingAuthenticationToken", "MissingAuthenticationToken", 403, true}
	codeIncompleteSignature    = errorCode{"IncompleteSignature", "IncompleteSignature", 400, true}
	codeInvalidClientTokenID   = errorCode{"InvalidClientTokenId", "InvalidClientTokenId", 403, true}
	codeSignatureDoesNotMatch  = errorCode{"SignatureDoesNotMatch", "SignatureDoesNotMatch", 403, true}
	codeRequestExpired         = errorCode{"RequestExpired", "RequestExpired", 400, true}
	codeInternalFailure        = errorCode{"InternalFailure", "InternalFailure", 500, false}
	codeServiceUnavailable     = errorCode{"ServiceUnavailable", "ServiceUnavailable", 503, false}
	codeRequestEntityTooLarge  = errorCode{"RequestEntityTooLarge", "RequestEntityTooLarge", 413, true}
	codeMalformedRequest       = errorCode{"SerializationException", "MalformedQueryString", 400, true}
)

// fault is "Sender" or "Receiver", as SQS's error replies say.
func (c errorCode) fault() string {
	if c.sender {
		return "Sender"
	}
	return "Receiver"
}

// apiError is an error reply: a code and a message for the client.
type apiError struct {
	code errorCode
	msg  string
}

func (e *apiError) Error() string { return e.code.shape + ": " + e.msg }

// fail makes an apiError with a formatted message.
func fail(code errorCode, format string, args ...any) *apiError {
	return &apiError{code: code, msg: fmt.Sprintf(format, args...)}
}

// asAPIError maps any error a handler returns to the reply it gets:
// an apiError as it is; the queue package's sentinels to SQS's codes; a
// signature error to its SigV4 code; anything else to InternalFailure
// (the detail is logged, never sent).
func asAPIError(err error) (e *apiError, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	switch {
	case errors.Is(err, queue.ErrQueueNotFound):
		return &apiError{codeQueueDoesNotExist, "The specified queue does not exist."}, false
	case errors.Is(err, queue.ErrInvalidName):
		return &apiError{codeInvalidParameterValue, err.Error()}, false
	case errors.Is(err, queue.ErrInvalid):
		return &apiError{codeInvalidParameterValue, err.Error()}, false
	case errors.Is(err, queue.ErrTooLarge):
		return &apiError{codeInvalidParameterValue, err.Error()}, false
	case errors.Is(err, queue.ErrQueueFull):
		return &apiError{codeOverLimit, err.Error()}, false
	case errors.Is(err, queue.ErrUnavailable), errors.Is(err, queue.ErrClosed):
		return &apiError{codeServiceUnavailable, err.Error()}, false
	case errors.Is(err, ErrMissingAuth):
		return &apiError{codeMissingAuthToken, err.Error()}, false
	case errors.Is(err, ErrMalformedAuth):
		return &apiError{codeIncompleteSignature, err.Error()}, false
	case errors.Is(err, ErrUnknownKey):
		return &apiError{codeInvalidClientTokenID, err.Error()}, false
	case errors.Is(err, ErrSignatureMismatch):
		return &apiError{codeSignatureDoesNotMatch, err.Error()}, false
	case errors.Is(err, ErrRequestExpired):
		return &apiError{codeRequestExpired, err.Error()}, false
	}
	return &apiError{codeInternalFailure, "spool could not complete the request; its log says why"}, true
}
