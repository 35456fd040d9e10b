package queue

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestQueueNames(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	cases := []struct {
		name string
		ok   bool
	}{
		{"jobs", true},
		{"a", true},
		{"Jobs_2.high-priority", true},
		{strings.Repeat("x", 80), true},
		{strings.Repeat("x", 81), false},
		{"", false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"a/b", false},
		{"a b", false},
		{"ünïcode", false},
		{"a\x00b", false},
	}
	for _, tc := range cases {
		_, _, err := b.Create(tc.name, ConfigUpdate{})
		if tc.ok && err != nil {
			t.Errorf("Create(%q) = %v, want success", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%q) = %v, want ErrInvalidName", tc.name, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(b.dir, "queues"))
	if len(entries) != 4 {
		t.Fatalf("%d queue directories, want 4 (no directory for a refused name)", len(entries))
	}
}

func TestCreateUpdateDelete(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, testOptions(newClock()))
	q, created, err := b.Create("jobs", ConfigUpdate{MaxAttempts: ptr(7)})
	if err != nil || !created {
		t.Fatalf("Create = %v, created %v", err, created)
	}
	want := DefaultConfig
	want.MaxAttempts = 7
	if q.Config() != want {
		t.Fatalf("config %+v, want %+v", q.Config(), want)
	}
	// Create again is an update of only the fields given.
	q2, created, err := b.Create("jobs", ConfigUpdate{VisibilityTimeout: ptr(time.Minute)})
	if err != nil || created || q2 != q {
		t.Fatalf("second Create = %v, created %v, same queue %v", err, created, q2 == q)
	}
	want.VisibilityTimeout = time.Minute
	if q.Config() != want {
		t.Fatalf("config after update %+v, want %+v", q.Config(), want)
	}
	bad := []ConfigUpdate{
		{VisibilityTimeout: ptr(time.Duration(0))},
		{VisibilityTimeout: ptr(13 * time.Hour)},
		{MaxAttempts: ptr(0)},
		{MaxAttempts: ptr(MaxMaxAttempts + 1)},
		{DeadLetterQueue: ptr("jobs")},
		{DeadLetterQueue: ptr("../x")},
		{MaxLength: ptr(-1)},
		{Retention: ptr(-time.Second)},
		{Delay: ptr(-time.Second)},
		{Delay: ptr(8 * 24 * time.Hour)},
	}
	for _, u := range bad {
		if _, _, err := b.Create("jobs", u); !errors.Is(err, ErrInvalid) {
			t.Errorf("update %+v = %v, want ErrInvalid", u, err)
		}
		if u.DeadLetterQueue != nil && *u.DeadLetterQueue == "jobs" {
			u.DeadLetterQueue = ptr("fresh") // its own dead-letter queue, at creation
		}
		if _, _, err := b.Create("fresh", u); !errors.Is(err, ErrInvalid) {
			t.Errorf("create with %+v = %v, want ErrInvalid", u, err)
		}
	}
	if q.Config() != want {
		t.Fatalf("refused updates changed the config to %+v", q.Config())
	}
	if _, err := b.Queue("fresh"); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("a refused create left a queue behind: %v", err)
	}
	enqueue(t, q, "x")
	b.Close()

	b = mustOpen(t, dir, testOptions(newClock()))
	q, err = b.Queue("jobs")
	if err != nil || q.Config() != want {
		t.Fatalf("after restart: %v, config %+v", err, q.Config())
	}
	if got := b.List(); len(got) != 1 || got[0].Name != "jobs" || got[0].Counts.Ready != 1 || got[0].Bytes == 0 {
		t.Fatalf("List = %+v", got)
	}
	if err := b.Delete("jobs"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "queues", "jobs")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("queue directory still there after Delete: %v", err)
	}
	if _, err := q.Enqueue([]NewMessage{{Body: []byte("y")}}); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("Enqueue on a deleted queue = %v, want ErrQueueNotFound", err)
	}
	if err := b.Delete("jobs"); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("second Delete = %v, want ErrQueueNotFound", err)
	}
	// A new queue of the same name starts empty.
	q = mustCreate(t, b, "jobs", ConfigUpdate{})
	if info, _ := q.Info(); info.Counts.Total != 0 {
		t.Fatalf("recreated queue holds %+v", info.Counts)
	}
}

func TestOpenSkipsHalfCreatedAndRefusesDamagedConfig(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, testOptions(newClock()))
	mustCreate(t, b, "good", ConfigUpdate{})
	b.Close()
	half := filepath.Join(dir, "queues", "half")
	os.MkdirAll(filepath.Join(half, "log"), 0o755)
	b = mustOpen(t, dir, testOptions(newClock()))
	if _, err := os.Stat(half); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("half-created queue directory (no queue.json) was not removed")
	}
	if len(b.List()) != 1 {
		t.Fatalf("List = %+v", b.List())
	}
	b.Close()
	cfg := filepath.Join(dir, "queues", "good", queueFileName)
	data, _ := os.ReadFile(cfg)
	tampered := strings.Replace(string(data), `"max_attempts": 5`, `"max_attempts": 6`, 1)
	if tampered == string(data) {
		t.Fatalf("queue.json does not hold max_attempts as expected:\n%s", data)
	}
	os.WriteFile(cfg, []byte(tampered), 0o644)
	if _, err := Open(dir, testOptions(newClock())); err == nil || !strings.Contains(err.Error(), "crc32c") {
		t.Fatalf("Open with a tampered queue.json = %v, want a checksum error", err)
	}
}

func TestEnqueueRefusesBadInputAndWritesNothing(t *testing.T) {
	opts := testOptions(newClock())
	opts.MaxMessageBytes = 1000
	b := mustOpen(t, t.TempDir(), opts)
	q := mustCreate(t, b, "q", ConfigUpdate{})
	many := map[string]string{}
	for i := 0; i < 65; i++ {
		many[string(rune('a'+i%26))+strings.Repeat("k", i)] = "v"
	}
	cases := []struct {
		name string
		msgs []NewMessage
		want error
	}{
		{"no messages", nil, ErrInvalid},
		{"body over the limit", []NewMessage{{Body: make([]byte, 1001)}}, ErrTooLarge},
		{"one bad message fails the batch", []NewMessage{{Body: []byte("ok")}, {Body: make([]byte, 1001)}}, ErrTooLarge},
		{"negative delay", []NewMessage{{Body: []byte("x"), Delay: ptr(-time.Second)}}, ErrInvalid},
		{"too many attributes", []NewMessage{{Body: []byte("x"), Attributes: many}}, ErrInvalid},
		{"attributes too large", []NewMessage{{Body: []byte("x"), Attributes: map[string]string{"k": strings.Repeat("v", 17<<10)}}}, ErrInvalid},
	}
	for _, tc := range cases {
		if _, err := q.Enqueue(tc.msgs); !errors.Is(err, tc.want) {
			t.Errorf("%s: Enqueue = %v, want %v", tc.name, err, tc.want)
		}
	}
	if info, _ := q.Info(); info.Counts.Total != 0 || q.log.LastID() != 0 {
		t.Fatalf("refused enqueues left %+v, last id %d", info.Counts, q.log.LastID())
	}
	if ids := enqueue(t, q, string(make([]byte, 1000))); ids[0] != 1 {
		t.Fatalf("first accepted message got id %d", ids[0])
	}
}

func TestASecondBrokerOnTheSameDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, testOptions(newClock()))
	if _, err := Open(dir, testOptions(newClock())); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Open = %v, want ErrLocked saying why", err)
	}
	b.Close()
	b2, err := Open(dir, testOptions(newClock()))
	if err != nil {
		t.Fatalf("Open after Close = %v: the lock was not released", err)
	}
	b2.Close()
}
