package api

import (
	"context"
	"net/http"
	"time"
)

// The Client's topic and subscription calls. A subscription's consumer
// calls (receive, ack, nack, extend, fail, peek, dead, redrive) are a
// queue's: Client.Subscription returns them.

// ListTopics returns every topic with its config, ids, size and
// subscriptions (each with its counts), sorted by name.
func (c *Client) ListTopics(ctx context.Context) ([]TopicInfo, error) {
	var out TopicList
	_, err := c.doJSON(ctx, http.MethodGet, TopicsPath, nil, nil, &out)
	return out.Topics, err
}

// GetTopic returns one topic's config, ids, size and subscriptions.
func (c *Client) GetTopic(ctx context.Context, topic string) (TopicInfo, error) {
	var out TopicInfo
	p, err := topicPath(topic, RouteQueue)
	if err == nil {
		_, err = c.doJSON(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}

// PutTopic creates the topic, or updates it when it exists: only the
// fields set in cfg change. created reports which happened. Like PutQueue
// it is idempotent.
func (c *Client) PutTopic(ctx context.Context, topic string, cfg TopicConfig) (info TopicInfo, created bool, err error) {
	p, err := topicPath(topic, RouteQueue)
	if err != nil {
		return info, false, err
	}
	status, err := c.doJSON(ctx, http.MethodPost, p, nil, cfg, &info)
	return info, status == http.StatusCreated, err
}

// DeleteTopic removes the topic, its subscriptions and every message.
func (c *Client) DeleteTopic(ctx context.Context, topic string) error {
	p, err := topicPath(topic, RouteDelete)
	if err == nil {
		_, err = c.doJSON(ctx, http.MethodPost, p, nil, nil, nil)
	}
	return err
}

// Publish appends one message, body as its exact bytes, to the topic and
// returns its id: every subscription sees it. delay (if not 0) holds it
// back on every subscription.
func (c *Client) Publish(ctx context.Context, topic string, body []byte, delay time.Duration) (id string, err error) {
	p, err := topicPath(topic, RouteMessages)
	if err != nil {
		return "", err
	}
	return c.sendOne(ctx, p, body, delay)
}

// PublishBatch publishes msgs all-or-nothing and returns their ids in
// order, as SendBatch does for a queue.
func (c *Client) PublishBatch(ctx context.Context, topic string, msgs []NewMessage) ([]string, error) {
	p, err := topicPath(topic, RouteBatch)
	if err != nil {
		return nil, err
	}
	return c.sendBatch(ctx, p, msgs)
}

// SeekTopic moves every subscription of the topic to to ("earliest",
// "latest", a message id or an RFC 3339 time) and returns the id they
// moved to. See SeekSubscription.
func (c *Client) SeekTopic(ctx context.Context, topic, to string) (id string, err error) {
	p, err := topicPath(topic, RouteSeek)
	if err != nil {
		return "", err
	}
	return c.seek(ctx, p, to)
}

// PutSubscription creates subscription sub of topic, or updates it when it
// exists: only the fields set in cfg change. cfg.Start applies at
// creation only (default "latest"); given to a subscription that exists,
// it is not an error but does not move it (info.Warnings says so): move
// it with SeekSubscription. created reports which happened.
func (c *Client) PutSubscription(ctx context.Context, topic, sub string, cfg SubscriptionConfig) (info SubscriptionInfo, created bool, err error) {
	p, err := subscriptionPath(topic, sub, RouteQueue)
	if err != nil {
		return info, false, err
	}
	status, err := c.doJSON(ctx, http.MethodPost, p, nil, cfg, &info)
	return info, status == http.StatusCreated, err
}

// GetSubscription returns one subscription's config and counts, lag,
// skipped and next id.
func (c *Client) GetSubscription(ctx context.Context, topic, sub string) (SubscriptionInfo, error) {
	var out SubscriptionInfo
	p, err := subscriptionPath(topic, sub, RouteQueue)
	if err == nil {
		_, err = c.doJSON(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}

// DeleteSubscription removes the subscription and its state; the topic's
// messages stay for its other subscriptions.
func (c *Client) DeleteSubscription(ctx context.Context, topic, sub string) error {
	p, err := subscriptionPath(topic, sub, RouteDelete)
	if err == nil {
		_, err = c.doJSON(ctx, http.MethodPost, p, nil, nil, nil)
	}
	return err
}

// SeekSubscription moves the subscription to to ("earliest", "latest", a
// message id or an RFC 3339 time) and returns the id it moved to:
// messages before it count as done, those from it on are delivered
// (again), and every lease held across the seek is a stale receipt.
func (c *Client) SeekSubscription(ctx context.Context, topic, sub, to string) (id string, err error) {
	p, err := subscriptionPath(topic, sub, RouteSeek)
	if err != nil {
		return "", err
	}
	return c.seek(ctx, p, to)
}

func (c *Client) seek(ctx context.Context, path, to string) (string, error) {
	var out SeekResult
	_, err := c.doJSON(ctx, http.MethodPost, path, nil, Seek{To: to}, &out)
	return out.ID, err
}
