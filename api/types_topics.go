package api

// The JSON shapes of the topic routes, shared by the server and Client.

// TopicConfig is the body of POST /v1/topics/:topic (create or update).
// Fields left out keep their value (or the default, on create: a
// retention of 168h and no byte limit).
type TopicConfig struct {
	// Retention is a Go duration: sealed segments whose messages are all
	// older go, read or not; "0s" keeps them until every subscription
	// has passed them.
	Retention *string `json:"retention,omitempty"`
	// MaxBytes removes the oldest sealed segments while the topic's log
	// is larger; 0 means no limit.
	MaxBytes *int64 `json:"max_bytes,omitempty"`
}

// TopicInfo is the reply of GET /v1/topics/:topic and an element of GET
// /v1/topics.
type TopicInfo struct {
	Name      string `json:"name"`
	Retention string `json:"retention"`
	MaxBytes  int64  `json:"max_bytes"`
	// HeadID is the oldest id the topic may still hold (retention removed
	// every id below it), TailID the newest published ("0" before the
	// first publish).
	HeadID string `json:"head_id"`
	TailID string `json:"tail_id"`
	// Bytes is the size of the topic's message log on disk.
	Bytes         int64              `json:"bytes"`
	Subscriptions []SubscriptionInfo `json:"subscriptions"`
	// Unavailable, in GET /v1/topics, says why a topic's files did not
	// open (the other fields are then empty); GET of the topic itself is
	// 503 queue_unavailable with the same words.
	Unavailable string `json:"unavailable,omitempty"`
}

// TopicList is the reply of GET /v1/topics.
type TopicList struct {
	Topics []TopicInfo `json:"topics"`
}

// SubscriptionConfig is the body of POST
// /v1/topics/:topic/subscriptions/:sub (create or update). Fields left
// out keep their value (or a queue's default, on create).
type SubscriptionConfig struct {
	// Start is where a new subscription starts: "earliest", "latest" (the
	// default: only what is published from now on), a message id, or an
	// RFC 3339 time (the first message published at or after it). It
	// applies at creation only; POST .../seek moves a subscription.
	Start             *string `json:"start,omitempty"`
	VisibilityTimeout *string `json:"visibility_timeout,omitempty"`
	MaxAttempts       *int    `json:"max_attempts,omitempty"`
	DeadLetterQueue   *string `json:"dead_letter_queue,omitempty"`
}

// SubscriptionInfo is the reply of GET
// /v1/topics/:topic/subscriptions/:sub, and an element of a TopicInfo.
type SubscriptionInfo struct {
	Topic             string `json:"topic"`
	Name              string `json:"name"`
	VisibilityTimeout string `json:"visibility_timeout"`
	MaxAttempts       int    `json:"max_attempts"`
	DeadLetterQueue   string `json:"dead_letter_queue"`
	// Counts are its messages by state; those published but not read yet
	// count as ready.
	Counts Counts `json:"counts"`
	// Lag is its backlog: ready, delayed and leased.
	Lag int `json:"lag"`
	// Skipped is how many of its messages retention removed before it
	// finished them, over its life (it survives restarts).
	Skipped uint64 `json:"skipped"`
	// NextID is the id of the next message it reads from the topic.
	NextID string `json:"next_id"`
	// Unavailable, in a TopicInfo, says why the subscription's files did
	// not open (the other fields but its names are then empty); its own
	// routes answer 503 queue_unavailable with the same words.
	Unavailable string `json:"unavailable,omitempty"`
	// Warnings, in the reply of a create or update, are what took effect
	// but may not be what was meant (a dead-letter queue that does not
	// exist yet; a start given to a subscription that exists). Absent
	// when there are none.
	Warnings []string `json:"warnings,omitempty"`
}

// Seek is the body of POST /v1/topics/:topic/seek and
// /v1/topics/:topic/subscriptions/:sub/seek: "earliest", "latest", a
// message id or an RFC 3339 time.
type Seek struct {
	To string `json:"to"`
}

// SeekResult is the reply of a seek: the id the subscription (every
// subscription, for a topic) moved to, the next it delivers.
type SeekResult struct {
	ID string `json:"id"`
}
