package api

// The JSON shapes of the HTTP API, shared by the server and Client. Ids
// are decimal strings: JSON numbers lose precision past 2^53 in many
// clients, and ids are uint64.

// QueueConfig is the body of POST /v1/queues/:queue (create or update).
// Fields left out keep their value (or the default, on create).
// Durations are Go duration strings ("30s", "5m").
type QueueConfig struct {
	VisibilityTimeout *string `json:"visibility_timeout,omitempty"`
	MaxAttempts       *int    `json:"max_attempts,omitempty"`
	DeadLetterQueue   *string `json:"dead_letter_queue,omitempty"`
	MaxLength         *int    `json:"max_length,omitempty"`
	Retention         *string `json:"retention,omitempty"`
	Delay             *string `json:"delay,omitempty"`
}

// QueueInfo is the reply of GET /v1/queues/:queue and an element of GET
// /v1/queues.
type QueueInfo struct {
	Name              string `json:"name"`
	VisibilityTimeout string `json:"visibility_timeout"`
	MaxAttempts       int    `json:"max_attempts"`
	DeadLetterQueue   string `json:"dead_letter_queue"`
	MaxLength         int    `json:"max_length"`
	Retention         string `json:"retention"`
	Delay             string `json:"delay"`
	Counts            Counts `json:"counts"`
	Bytes             int64  `json:"bytes"`
	// Stats count what happened to the queue's messages since the server
	// opened it (the dashboard's rates are their differences).
	Stats *QueueStats `json:"stats,omitempty"`
	// Unavailable, in GET /v1/queues, says why a queue's files did not
	// open (the other fields are then empty); GET of the queue itself is
	// 503 queue_unavailable with the same words.
	Unavailable string `json:"unavailable,omitempty"`
	// Warnings, in the reply of a create or update, are what took effect
	// but may not be what was meant: a dead-letter queue that does not
	// exist yet, say. Absent when there are none.
	Warnings []string `json:"warnings,omitempty"`
}

// QueueStats are a queue's counters since the server opened it.
type QueueStats struct {
	Enqueued uint64 `json:"enqueued"`
	Acked    uint64 `json:"acked"`
	Nacked   uint64 `json:"nacked"`
	Expired  uint64 `json:"expired"`
	Dead     uint64 `json:"dead"`
}

// Counts are a queue's messages by state.
type Counts struct {
	Ready   int `json:"ready"`
	Delayed int `json:"delayed"`
	Leased  int `json:"leased"`
	Dead    int `json:"dead"`
	Total   int `json:"total"`
}

// QueueList is the reply of GET /v1/queues.
type QueueList struct {
	Queues []QueueInfo `json:"queues"`
}

// NewMessage is one message of POST /v1/queues/:queue/batch. Exactly one
// of Body (text) and BodyBase64 (any bytes) is set.
type NewMessage struct {
	Body       *string           `json:"body,omitempty"`
	BodyBase64 *string           `json:"body_base64,omitempty"`
	Delay      string            `json:"delay,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
	// Priority orders ready messages: 0 first, then by id (default 1024).
	// A queue's only: a topic refuses it.
	Priority *uint32 `json:"priority,omitempty"`
	// VisibilityTimeout is the message's own lease length, for a receive
	// that gives none (a Go duration; default: the queue's).
	VisibilityTimeout string `json:"visibility_timeout,omitempty"`
}

// Batch is the body of POST /v1/queues/:queue/batch.
type Batch struct {
	Messages []NewMessage `json:"messages"`
}

// Enqueued is the reply of both enqueue routes.
type Enqueued struct {
	IDs []string `json:"ids"`
}

// Message is a message as received, peeked or listed. Body is set when
// the bytes are valid UTF-8, else BodyBase64.
type Message struct {
	ID         string `json:"id"`
	Receipt    string `json:"receipt,omitempty"`
	Attempts   int    `json:"attempts"`
	State      string `json:"state,omitempty"`
	EnqueuedAt string `json:"enqueued_at"`
	// ReadyAt is when a delayed message becomes ready, and LeaseEnds
	// when a leased message's lease runs out (RFC 3339, UTC); each is
	// absent for a message in another state.
	ReadyAt   string `json:"ready_at,omitempty"`
	LeaseEnds string `json:"lease_ends,omitempty"`
	// Priority is its place in the ready order (1024 unless it was
	// enqueued, nacked or buried with another).
	Priority uint32 `json:"priority"`
	// VisibilityTimeout is its own lease length, absent if it has none.
	VisibilityTimeout string            `json:"visibility_timeout,omitempty"`
	Body              *string           `json:"body,omitempty"`
	BodyBase64        *string           `json:"body_base64,omitempty"`
	Attributes        map[string]string `json:"attributes,omitempty"`
}

// Messages is the reply of receive, peek and the dead list.
type Messages struct {
	Messages []Message `json:"messages"`
}

// Receipts is the body of ack, nack, extend and fail.
type Receipts struct {
	Receipts []string `json:"receipts"`
	// Position is "front" or "back" (the default), for nack.
	Position string `json:"position,omitempty"`
	// Delay is a Go duration, for nack.
	Delay string `json:"delay,omitempty"`
	// Visibility is a Go duration, for extend (default: the queue's).
	Visibility string `json:"visibility,omitempty"`
}

// Results is the reply of ack, nack, extend and fail when receipts did not
// all fail the same way: one result per receipt, in order.
type Results struct {
	Results []Result `json:"results"`
}

// Result is one receipt's outcome.
type Result struct {
	Receipt string     `json:"receipt"`
	OK      bool       `json:"ok,omitempty"`
	Error   *ErrorBody `json:"error,omitempty"`
}

// Redriven is the reply of POST /v1/queues/:queue/redrive.
type Redriven struct {
	Redriven int `json:"redriven"`
}

// ErrorReply is the body of every error response.
type ErrorReply struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is a stable machine-readable code and a message for people.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
