package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/spoolq/spool/queue"
)

// The routes of topics and subscriptions that are theirs alone: config,
// listing and seek. Publishing is the enqueue routes' handlers, and a
// subscription's consumer routes are a queue's (see routeTable).

// topicJSON is i as GET /v1/topics and GET /v1/topics/:topic reply with it.
func topicJSON(i queue.TopicInfo) TopicInfo {
	if i.Err != nil {
		return TopicInfo{Name: i.Name, Subscriptions: []SubscriptionInfo{}, Unavailable: i.Err.Error()}
	}
	out := TopicInfo{
		Name:          i.Name,
		Retention:     i.Config.Retention.String(),
		MaxBytes:      i.Config.MaxBytes,
		HeadID:        strconv.FormatUint(i.HeadID, 10),
		TailID:        strconv.FormatUint(i.TailID, 10),
		Bytes:         i.Bytes,
		Subscriptions: make([]SubscriptionInfo, len(i.Subscriptions)),
	}
	for j, si := range i.Subscriptions {
		out.Subscriptions[j] = subscriptionJSON(si)
	}
	return out
}

// subscriptionJSON is i as the subscription routes reply with it.
func subscriptionJSON(i queue.SubscriptionInfo) SubscriptionInfo {
	if i.Err != nil {
		return SubscriptionInfo{Topic: i.Topic, Name: i.Name, Unavailable: i.Err.Error()}
	}
	return SubscriptionInfo{
		Topic:             i.Topic,
		Name:              i.Name,
		VisibilityTimeout: i.Config.VisibilityTimeout.String(),
		MaxAttempts:       i.Config.MaxAttempts,
		DeadLetterQueue:   i.Config.DeadLetterQueue,
		Counts:            Counts(i.Counts),
		Lag:               i.Lag,
		Skipped:           i.Skipped,
		NextID:            strconv.FormatUint(i.Next, 10),
	}
}

func (s *Server) listTopics(w http.ResponseWriter, r *http.Request, _ target) error {
	infos := s.b.Topics()
	key := keyOf(r.Context())
	out := TopicList{Topics: make([]TopicInfo, 0, len(infos))}
	for _, info := range infos {
		if key == nil || key.May(PermRead, info.Name) {
			out.Topics = append(out.Topics, topicJSON(info))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getTopic(w http.ResponseWriter, _ *http.Request, tg target) error {
	info, err := tg.topic.Info()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, topicJSON(info))
	return nil
}

// putTopic creates the topic (201) or changes only the fields given (200).
func (s *Server) putTopic(w http.ResponseWriter, r *http.Request, tg target) error {
	var c TopicConfig
	if err := readJSONOrEmpty(w, r, configLimit, &c); err != nil {
		return err
	}
	u := queue.TopicUpdate{MaxBytes: c.MaxBytes}
	var err error
	if u.Retention, err = configDuration("retention", c.Retention); err != nil {
		return err
	}
	t, created, err := s.b.CreateTopic(tg.ps.ByName(topicParam), u)
	if err != nil {
		return err
	}
	info, err := t.Info()
	if err != nil {
		return err
	}
	writeJSON(w, createdStatus(created), topicJSON(info))
	return nil
}

func (s *Server) deleteTopic(w http.ResponseWriter, _ *http.Request, tg target) error {
	if err := s.b.DeleteTopic(tg.ps.ByName(topicParam)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) getSubscription(w http.ResponseWriter, _ *http.Request, tg target) error {
	info, err := tg.sub.Info()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, subscriptionJSON(info))
	return nil
}

// startOnUpdate is the warning for a start given to a subscription that
// exists: it is not refused, so a program may send the same create on
// every start, but it does not move the subscription.
const startOnUpdate = "start applies only when a subscription is created: this one stays where it is (move it with POST %s)"

// putSubscription creates the subscription at its start (201) or changes
// only the config fields given (200).
func (s *Server) putSubscription(w http.ResponseWriter, r *http.Request, tg target) error {
	var c SubscriptionConfig
	if err := readJSONOrEmpty(w, r, configLimit, &c); err != nil {
		return err
	}
	start := queue.Latest()
	if c.Start != nil {
		var err error
		if start, err = parsePosition("start", *c.Start); err != nil {
			return err
		}
	}
	u := queue.SubscriptionUpdate{MaxAttempts: c.MaxAttempts, DeadLetterQueue: c.DeadLetterQueue}
	var err error
	if u.VisibilityTimeout, err = configDuration("visibility_timeout", c.VisibilityTimeout); err != nil {
		return err
	}
	name := tg.ps.ByName(subscriptionParam)
	sub, created, err := tg.topic.CreateSubscription(name, u, start)
	if err != nil {
		return err
	}
	info, err := sub.Info()
	if err != nil {
		return err
	}
	out := subscriptionJSON(info)
	out.Warnings = s.configWarnings(info.Config.DeadLetterQueue, "subscription")
	if !created && c.Start != nil {
		out.Warnings = append(out.Warnings, fmt.Sprintf(startOnUpdate, SubscriptionPath(sub.Topic(), sub.Name(), RouteSeek)))
	}
	writeJSON(w, createdStatus(created), out)
	return nil
}

func (s *Server) deleteSubscription(w http.ResponseWriter, _ *http.Request, tg target) error {
	if err := tg.topic.DeleteSubscription(tg.ps.ByName(subscriptionParam)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// seek moves the subscription the route names, or every subscription of
// its topic, and answers the id they moved to.
func (s *Server) seek(w http.ResponseWriter, r *http.Request, tg target) error {
	var body Seek
	if err := readJSON(w, r, configLimit, &body); err != nil {
		return err
	}
	if body.To == "" {
		return fmt.Errorf(`%w: the body must say where to, like {"to":"earliest"}: earliest, latest, a message id or an RFC 3339 time`, errBadRequest)
	}
	p, err := parsePosition("to", body.To)
	if err != nil {
		return err
	}
	var id uint64
	if tg.sub != nil {
		id, err = tg.sub.Seek(p)
	} else {
		id, err = tg.topic.Seek(p)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, SeekResult{ID: strconv.FormatUint(id, 10)})
	return nil
}

// parsePosition parses s, the value of field name, as a queue.Position.
func parsePosition(name, s string) (queue.Position, error) {
	p, err := queue.ParsePosition(s)
	if err != nil {
		return p, fmt.Errorf("%w: %s=%q must be earliest, latest, a message id (from 1) or an RFC 3339 time like 2026-03-01T12:00:00Z", errBadRequest, name, s)
	}
	return p, nil
}

// configDuration parses a config body's duration field name (nil when
// absent).
func configDuration(name string, in *string) (*time.Duration, error) {
	if in == nil {
		return nil, nil
	}
	d, err := time.ParseDuration(*in)
	if err != nil {
		return nil, fmt.Errorf("%w: %s=%q is not a duration (like 30s or 5m)", errBadRequest, name, *in)
	}
	return &d, nil
}

// createdStatus is the status of a create-or-update reply.
func createdStatus(created bool) int {
	if created {
		return http.StatusCreated
	}
	return http.StatusOK
}
