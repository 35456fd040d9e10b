package queue

import (
	"encoding/json"
	"fmt"
	"time"
)

// TopicConfig is a topic's configuration.
type TopicConfig struct {
	// Retention removes sealed segments whose messages are all older than
	// this, read or not; 0 keeps them until every subscription is past
	// them (a topic with no subscription then keeps everything).
	Retention time.Duration
	// MaxBytes removes the oldest sealed segments while the log is larger;
	// 0 = no limit.
	MaxBytes int64
}

// DefaultTopicConfig is what a topic created with no settings gets: a
// week of messages, as a topic with no subscription keeps messages for
// its retention only.
var DefaultTopicConfig = TopicConfig{Retention: 7 * 24 * time.Hour}

// TopicUpdate changes only the fields that are set.
type TopicUpdate struct {
	Retention *time.Duration
	MaxBytes  *int64
}

func (c TopicConfig) apply(u TopicUpdate) (TopicConfig, error) {
	if u.Retention != nil {
		c.Retention = *u.Retention
	}
	if u.MaxBytes != nil {
		c.MaxBytes = *u.MaxBytes
	}
	switch {
	case c.Retention < 0:
		return c, fmt.Errorf("%w: retention %s is negative", ErrInvalid, c.Retention)
	case c.MaxBytes < 0:
		return c, fmt.Errorf("%w: max_bytes %d is negative", ErrInvalid, c.MaxBytes)
	}
	return c, nil
}

type topicConfigJSON struct {
	Retention string `json:"retention"`
	MaxBytes  int64  `json:"max_bytes"`
}

// MarshalJSON writes the retention as a Go duration string ("168h0m0s").
func (c TopicConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(topicConfigJSON{Retention: c.Retention.String(), MaxBytes: c.MaxBytes})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *TopicConfig) UnmarshalJSON(b []byte) error {
	var j topicConfigJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d, err := time.ParseDuration(j.Retention)
	*c = TopicConfig{Retention: d, MaxBytes: j.MaxBytes}
	return err
}

// SubscriptionConfig is a subscription's configuration: the queue
// settings that apply to it.
type SubscriptionConfig struct {
	VisibilityTimeout time.Duration
	MaxAttempts       int
	// DeadLetterQueue, if set, is the queue that receives this
	// subscription's dead messages (a copy of the body and attributes,
	// with the origin "topic/subscription"); otherwise they stay dead here.
	DeadLetterQueue string
}

// DefaultSubscriptionConfig is what a subscription created with no
// settings gets: a queue's defaults.
var DefaultSubscriptionConfig = SubscriptionConfig{VisibilityTimeout: DefaultConfig.VisibilityTimeout, MaxAttempts: DefaultConfig.MaxAttempts}

// SubscriptionUpdate changes only the fields that are set.
type SubscriptionUpdate struct {
	VisibilityTimeout *time.Duration
	MaxAttempts       *int
	DeadLetterQueue   *string
}

func (c SubscriptionConfig) queueConfig() Config {
	return Config{VisibilityTimeout: c.VisibilityTimeout, MaxAttempts: c.MaxAttempts, DeadLetterQueue: c.DeadLetterQueue}
}

// subscriptionConfig is the part of a queue's config a subscription has.
func (c Config) subscriptionConfig() SubscriptionConfig {
	return SubscriptionConfig{VisibilityTimeout: c.VisibilityTimeout, MaxAttempts: c.MaxAttempts, DeadLetterQueue: c.DeadLetterQueue}
}

func (c SubscriptionConfig) apply(u SubscriptionUpdate, self string) (SubscriptionConfig, error) {
	qc, err := c.queueConfig().apply(ConfigUpdate{VisibilityTimeout: u.VisibilityTimeout, MaxAttempts: u.MaxAttempts, DeadLetterQueue: u.DeadLetterQueue}, self)
	return qc.subscriptionConfig(), err
}

type subscriptionConfigJSON struct {
	VisibilityTimeout string `json:"visibility_timeout"`
	MaxAttempts       int    `json:"max_attempts"`
	DeadLetterQueue   string `json:"dead_letter_queue"`
}

// MarshalJSON writes the visibility timeout as a Go duration string.
func (c SubscriptionConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(subscriptionConfigJSON{VisibilityTimeout: c.VisibilityTimeout.String(), MaxAttempts: c.MaxAttempts, DeadLetterQueue: c.DeadLetterQueue})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *SubscriptionConfig) UnmarshalJSON(b []byte) error {
	var j subscriptionConfigJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	d, err := time.ParseDuration(j.VisibilityTimeout)
	*c = SubscriptionConfig{VisibilityTimeout: d, MaxAttempts: j.MaxAttempts, DeadLetterQueue: j.DeadLetterQueue}
	return err
}

// subscriptionFile is what sub.json holds: the config, and the id the
// subscription started at, where its table begins when it has no
// snapshot to load.
type subscriptionFile struct {
	Config  SubscriptionConfig `json:"config"`
	StartID uint64             `json:"start_id,string"`
}
