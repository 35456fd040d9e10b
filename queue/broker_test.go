package queue

import (
	"context"
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

func TestOpenNeverRemovesWhatSpoolDidNotCreate(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, testOptions(newClock()))
	mustCreate(t, b, "good", ConfigUpdate{})
	b.Close()
	// A directory with a queue's name but no queue.json is someone else's;
	// .creating- and .deleting- ones are what a crash leaves of spool's.
	photo := filepath.Join(dir, "queues", "photos", "2024", "holiday.jpg")
	os.MkdirAll(filepath.Dir(photo), 0o755)
	os.WriteFile(photo, []byte("x"), 0o644)
	staged := filepath.Join(dir, "queues", creatingPrefix+"half-1")
	deleted := filepath.Join(dir, "queues", deletingPrefix+"gone-1")
	for _, d := range []string{staged, deleted} {
		os.MkdirAll(filepath.Join(d, "log"), 0o755)
	}
	b = mustOpen(t, dir, testOptions(newClock()))
	for _, d := range []string{staged, deleted} {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("interrupted create or delete %s was not removed: %v", d, err)
		}
	}
	foreignCalls := []struct {
		name string
		call func() error
	}{
		{"Queue", func() error { _, err := b.Queue("photos"); return err }},
		{"Create", func() error { _, _, err := b.Create("photos", ConfigUpdate{}); return err }},
		{"Delete", func() error { return b.Delete("photos") }},
	}
	for _, c := range foreignCalls {
		if err := c.call(); !errors.Is(err, ErrQueueDamaged) || !strings.Contains(err.Error(), "did not create") {
			t.Errorf("%s(photos) = %v, want ErrQueueDamaged saying spool did not create it", c.name, err)
		}
	}
	if data, err := os.ReadFile(photo); err != nil || string(data) != "x" {
		t.Fatalf("the user's file is gone or changed: %q, %v", data, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "queues", "photos", queueFileName)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("spool wrote a queue.json into a directory it did not create: %v", err)
	}
	infos := b.List()
	if len(infos) != 2 || infos[0].Name != "good" || infos[0].Err != nil || infos[1].Name != "photos" || !errors.Is(infos[1].Err, ErrQueueDamaged) {
		t.Fatalf("List = %+v, want good and photos (unavailable)", infos)
	}
}

func TestOpenRefusesADirectoryThatIsNotSpools(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "queues", "photos"), 0o755)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	before, _ := os.ReadDir(dir)
	if _, err := Open(dir, testOptions(newClock())); !errors.Is(err, ErrNotDataDir) {
		t.Fatalf("Open of a foreign tree = %v, want ErrNotDataDir", err)
	}
	if _, err := Check(dir); !errors.Is(err, ErrNotDataDir) {
		t.Fatalf("Check of a foreign tree = %v, want ErrNotDataDir", err)
	}
	if after, _ := os.ReadDir(dir); len(after) != len(before) {
		t.Fatalf("a refused Open or Check wrote into the directory: %v", after)
	}
	if _, err := Check(t.TempDir()); !errors.Is(err, ErrNotDataDir) {
		t.Fatalf("Check of an empty directory = %v, want ErrNotDataDir", err)
	}
	missing := filepath.Join(dir, "nothing-here")
	if _, err := Check(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "no data directory at") {
		t.Fatalf("Check of a path that does not exist = %v, want fs.ErrNotExist saying so", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Check created %s", missing)
	}
}

func TestOpenAcceptsARoundOneDirectoryAndMarksIt(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, testOptions(newClock()))
	enqueue(t, mustCreate(t, b, "jobs", ConfigUpdate{}), "kept")
	b.Close()
	os.Remove(filepath.Join(dir, markerName)) // as round 1 left it: LOCK and queues/
	b = mustOpen(t, dir, testOptions(newClock()))
	if info, err := mustQueue(t, b, "jobs").Info(); err != nil || info.Counts.Ready != 1 {
		t.Fatalf("round-1 queue after Open: %+v, %v", info.Counts, err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, markerName)); err != nil || string(data) != markerText {
		t.Fatalf("marker after Open: %q, %v", data, err)
	}
	b.Close()
	os.WriteFile(filepath.Join(dir, markerName), []byte("spool data directory\nformat 99\n"), 0o644)
	if _, err := Open(dir, testOptions(newClock())); !errors.Is(err, ErrNotDataDir) {
		t.Fatalf("Open with a marker it does not know = %v, want ErrNotDataDir", err)
	}
}

func TestADamagedQueueDoesNotTakeTheOthersDown(t *testing.T) {
	dir := t.TempDir()
	b := mustOpen(t, dir, testOptions(newClock()))
	mustCreate(t, b, "good", ConfigUpdate{})
	enqueue(t, mustCreate(t, b, "other", ConfigUpdate{}), "still here")
	b.Close()
	cfg := filepath.Join(dir, "queues", "good", queueFileName)
	data, _ := os.ReadFile(cfg)
	tampered := strings.Replace(string(data), `"max_attempts": 5`, `"max_attempts": 6`, 1)
	if tampered == string(data) {
		t.Fatalf("queue.json does not hold max_attempts as expected:\n%s", data)
	}
	os.WriteFile(cfg, []byte(tampered), 0o644)
	b = mustOpen(t, dir, testOptions(newClock()))
	if _, err := b.Queue("good"); !errors.Is(err, ErrQueueDamaged) || !strings.Contains(err.Error(), "queue.json") {
		t.Fatalf("Queue(good) with a tampered queue.json = %v, want ErrQueueDamaged naming queue.json", err)
	}
	if _, _, err := b.Create("good", ConfigUpdate{}); !errors.Is(err, ErrQueueDamaged) {
		t.Fatalf("Create over a damaged queue = %v, want ErrQueueDamaged", err)
	}
	msgs, err := mustQueue(t, b, "other").Receive(context.Background(), ReceiveOptions{})
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "still here" {
		t.Fatalf("the other queue: %v, %v", msgs, err)
	}
	rep, err := func() (*CheckReport, error) { b.Close(); return Check(dir) }()
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Problems(); len(p) != 1 || p[0].Queue != "good" || !strings.Contains(p[0].What, "crc32c") {
		t.Fatalf("Check problems = %+v, want good's checksum", p)
	}
	// The operator may delete the damaged queue; then the name is free.
	b = mustOpen(t, dir, testOptions(newClock()))
	if err := b.Delete("good"); err != nil {
		t.Fatalf("Delete of a damaged queue: %v", err)
	}
	mustCreate(t, b, "good", ConfigUpdate{})
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

func mustQueue(tb testing.TB, b *Broker, name string) *Queue {
	tb.Helper()
	q, err := b.Queue(name)
	if err != nil {
		tb.Fatalf("Queue(%s): %v", name, err)
	}
	return q
}

func TestTheDefaultClockIgnoresWallClockSteps(t *testing.T) {
	// The clock reads the wall clock once and adds elapsed monotonic time:
	// whatever the wall clock does meanwhile (an NTP step), leases and
	// delays move with elapsed time only.
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var elapsed time.Duration
	now := monotonicClock(start, func() time.Duration { return elapsed })
	for _, e := range []time.Duration{0, time.Second, 90 * time.Minute} {
		elapsed = e
		if got := now(); !got.Equal(start.Add(e)) {
			t.Fatalf("after %v the clock reads %v, want %v", e, got, start.Add(e))
		}
	}
	// And the default one is built on it, from the real elapsed time.
	opts, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	a, b := opts.Now(), opts.Now()
	if b.Before(a) || b.Sub(a) > time.Minute {
		t.Fatalf("default clock read %v then %v", a, b)
	}
}

// reopenQueue closes b, opens dir again with opts, and returns the new
// broker and its queue name.
func reopenQueue(tb testing.TB, b *Broker, dir string, opts Options, name string) (*Broker, *Queue) {
	tb.Helper()
	if err := b.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := Open(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return b, mustQueue(tb, b, name)
}
