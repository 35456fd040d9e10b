package queue

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQueueAttributes(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "q", ConfigUpdate{})
	plain, err := os.ReadFile(filepath.Join(dir, queuesName, "q", queueFileName))
	if err != nil {
		t.Fatal(err)
	}
	if q.Attributes() != nil {
		t.Fatalf("a new queue has attributes %v", q.Attributes())
	}
	steps := []struct {
		set    map[string]string
		remove []string
		want   map[string]string
		err    bool
	}{
		{set: map[string]string{"sqs:tag:team": "ops", "sqs:wait": "20"}, want: map[string]string{"sqs:tag:team": "ops", "sqs:wait": "20"}},
		{set: map[string]string{"sqs:wait": "5"}, remove: []string{"sqs:tag:team", "absent"}, want: map[string]string{"sqs:wait": "5"}},
		{set: map[string]string{"": "x"}, err: true, want: map[string]string{"sqs:wait": "5"}},
		{set: map[string]string{strings.Repeat("k", 256): "x"}, err: true, want: map[string]string{"sqs:wait": "5"}},
		{set: map[string]string{"big": strings.Repeat("v", MaxQueueAttributeBytes)}, err: true, want: map[string]string{"sqs:wait": "5"}},
		{set: manyAttributes(MaxQueueAttributes), err: true, want: map[string]string{"sqs:wait": "5"}},
		{set: map[string]string{"empty": ""}, remove: []string{"empty"}, want: map[string]string{"sqs:wait": "5", "empty": ""}}, // set wins
	}
	for i, st := range steps {
		err := q.SetAttributes(st.set, st.remove)
		if (err != nil) != st.err || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Fatalf("step %d: SetAttributes: %v, want error %v", i, err, st.err)
		}
		if got := q.Attributes(); !maps.Equal(got, st.want) {
			t.Fatalf("step %d: attributes %v, want %v", i, got, st.want)
		}
	}
	// A config change keeps them; a reopen reads them back.
	if _, _, err := b.Create("q", ConfigUpdate{MaxAttempts: ptr(7)}); err != nil {
		t.Fatal(err)
	}
	want := steps[len(steps)-1].want
	b.Close()
	b = mustOpen(t, dir, opts)
	q, err = b.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	if got := q.Attributes(); !maps.Equal(got, want) || q.Config().MaxAttempts != 7 {
		t.Fatalf("after reopen: attributes %v, config %+v; want %v", got, q.Config(), want)
	}
	// Removing them all writes queue.json as a queue without them has it.
	if err := q.SetAttributes(nil, []string{"sqs:wait", "empty"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Create("q", ConfigUpdate{MaxAttempts: ptr(DefaultConfig.MaxAttempts)}); err != nil {
		t.Fatal(err)
	}
	now, err := os.ReadFile(filepath.Join(dir, queuesName, "q", queueFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, plain) {
		t.Fatalf("queue.json without attributes differs from before:\n%s\nwas\n%s", now, plain)
	}
	// A subscription keeps none.
	tp, _, err := b.CreateTopic("t", TopicUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := tp.CreateSubscription("s", SubscriptionUpdate{}, Position{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.q.SetAttributes(map[string]string{"a": "b"}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a subscription's SetAttributes: %v, want ErrInvalid", err)
	}
}

func manyAttributes(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m["k"+strings.Repeat("x", i%200)+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
	}
	return m
}

// Change checks the config and the attributes before it writes either:
// one refused leaves both as they were, on disk too.
func TestChangeIsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "q", ConfigUpdate{})
	mustCreate(t, b, "dead", ConfigUpdate{})
	base := map[string]string{"sqs:wait": "5"}
	if err := q.Change(Change{Config: ConfigUpdate{MaxAttempts: ptr(4)}, SetAttributes: base}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    Change
	}{
		{"its own dead-letter queue", Change{Config: ConfigUpdate{DeadLetterQueue: ptr("q")}, SetAttributes: map[string]string{"sqs:wait": "9"}}},
		{"attempts out of range", Change{Config: ConfigUpdate{MaxAttempts: ptr(MaxMaxAttempts + 1)}, RemoveAttributes: []string{"sqs:wait"}}},
		{"an attribute key too long", Change{Config: ConfigUpdate{DeadLetterQueue: ptr("dead")}, SetAttributes: map[string]string{strings.Repeat("k", 256): "x"}}},
		{"too many attributes", Change{Config: ConfigUpdate{MaxAttempts: ptr(9)}, SetAttributes: manyAttributes(MaxQueueAttributes)}},
	} {
		if err := q.Change(tc.c); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%s: Change: %v, want ErrInvalid", tc.name, err)
		}
		if cfg := q.Config(); cfg.MaxAttempts != 4 || cfg.DeadLetterQueue != "" || !maps.Equal(q.Attributes(), base) {
			t.Fatalf("%s: a refused change left config %+v, attributes %v", tc.name, cfg, q.Attributes())
		}
	}
	if err := q.Change(Change{Config: ConfigUpdate{DeadLetterQueue: ptr("dead")}, SetAttributes: map[string]string{"sqs:tag:a": "b"}, RemoveAttributes: []string{"sqs:wait"}}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	q, err := b.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := q.Config(); cfg.MaxAttempts != 4 || cfg.DeadLetterQueue != "dead" || !maps.Equal(q.Attributes(), map[string]string{"sqs:tag:a": "b"}) {
		t.Fatalf("after reopen: config %+v, attributes %v", cfg, q.Attributes())
	}
}

// CreateNew makes a queue with its attributes in one go and never
// touches an existing one.
func TestCreateNew(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	attrs := map[string]string{"sqs:tag:team": "ops"}
	q, err := b.CreateNew("q", ConfigUpdate{MaxAttempts: ptr(5)}, CreateOptions{Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	if q.Config().MaxAttempts != 5 || !maps.Equal(q.Attributes(), attrs) {
		t.Fatalf("CreateNew made config %+v, attributes %v", q.Config(), q.Attributes())
	}
	again, err := b.CreateNew("q", ConfigUpdate{MaxAttempts: ptr(6)}, CreateOptions{Attributes: map[string]string{"other": "x"}})
	if !errors.Is(err, ErrQueueExists) || again != q {
		t.Fatalf("CreateNew of an existing queue: %v, %p (want ErrQueueExists and the queue %p)", err, again, q)
	}
	if q.Config().MaxAttempts != 5 || !maps.Equal(q.Attributes(), attrs) {
		t.Fatalf("CreateNew changed an existing queue: config %+v, attributes %v", q.Config(), q.Attributes())
	}
	for name, c := range map[string]struct {
		u     ConfigUpdate
		attrs map[string]string
	}{
		"bad-config": {ConfigUpdate{MaxAttempts: ptr(0)}, nil},
		"bad-attrs":  {ConfigUpdate{}, map[string]string{"": "x"}},
	} {
		if _, err := b.CreateNew(name, c.u, CreateOptions{Attributes: c.attrs}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("CreateNew %s: %v, want ErrInvalid", name, err)
		}
		if _, err := b.Queue(name); !errors.Is(err, ErrQueueNotFound) {
			t.Fatalf("a refused CreateNew left queue %s: %v", name, err)
		}
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	if q, err = b.Queue("q"); err != nil {
		t.Fatal(err)
	}
	if q.Config().MaxAttempts != 5 || !maps.Equal(q.Attributes(), attrs) {
		t.Fatalf("after reopen: config %+v, attributes %v", q.Config(), q.Attributes())
	}
}

// A deleted queue's serial is not given to the next queue created while
// the broker runs: an SQS receipt handle names its queue by it.
func TestDeletedSerialIsNotReused(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	mustCreate(t, b, "a", ConfigUpdate{})
	top := mustCreate(t, b, "b", ConfigUpdate{})
	old, err := top.Serial()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("b"); err != nil {
		t.Fatal(err)
	}
	next, err := mustCreate(t, b, "c", ConfigUpdate{}).Serial()
	if err != nil || next <= old {
		t.Fatalf("the queue made after deleting serial %d got %d (%v)", old, next, err)
	}
}
