//go:build unix

package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
	"github.com/spoolq/spool/log/crashtest"
)

// The dead-letter crash test kills a child that fails every message it
// receives, so maintenance moves them to the dead-letter queue all the
// time, and checks after each kill that every message whose enqueue
// returned is in exactly one of the two queues: a move cut short by the
// kill must neither lose the message nor leave it in the dead-letter
// queue twice.
const (
	dlqCrashEnvDir   = "SPOOL_DLQ_CRASH_DIR"
	dlqCrashEnvCycle = "SPOOL_DLQ_CRASH_CYCLE"
	dlqCrashCycles   = 20
)

func dlqCrashOptions() Options {
	return Options{Sync: log.SyncAlways, SegmentSize: 64 << 10, MaintenanceInterval: 2 * time.Millisecond, Logger: quiet}
}

func TestDeadLetterCrashChild(t *testing.T) {
	dir := crashtest.Child(t, dlqCrashEnvDir)
	cycle, err := strconv.Atoi(os.Getenv(dlqCrashEnvCycle))
	if err != nil {
		crashtest.Die("bad %s: %v", dlqCrashEnvCycle, err)
	}
	b, err := Open(dir, dlqCrashOptions())
	if err != nil {
		crashtest.Die("Open: %v", err)
	}
	if _, _, err := b.Create("jobs.dlq", ConfigUpdate{}); err != nil {
		crashtest.Die("Create: %v", err)
	}
	q, _, err := b.Create("jobs", ConfigUpdate{MaxAttempts: ptr(1), DeadLetterQueue: ptr("jobs.dlq"), MaxLength: ptr(2000)})
	if err != nil {
		crashtest.Die("Create: %v", err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for seq := 0; ; seq += 4 {
				msgs := make([]NewMessage, 4)
				for i := range msgs {
					msgs[i].Body = fmt.Appendf(nil, "c%d-p%d-%d", cycle, g, seq+i)
				}
				ids, err := q.Enqueue(msgs)
				if errors.Is(err, ErrQueueFull) {
					time.Sleep(time.Millisecond) // pacing, not synchronization
					continue
				}
				if err != nil {
					crashtest.Die("Enqueue: %v", err)
				}
				mu.Lock()
				for i := range ids {
					fmt.Fprintf(out, "E %s\n", msgs[i].Body)
				}
				err = out.Flush()
				mu.Unlock()
				if err != nil {
					crashtest.Die("stdout: %v", err)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for {
				msgs, err := q.Receive(context.Background(), ReceiveOptions{Max: 20, Wait: 20 * time.Millisecond})
				if err != nil {
					crashtest.Die("Receive: %v", err)
				}
				if len(msgs) > 0 {
					if _, err := q.Fail(receipts(msgs)); err != nil {
						crashtest.Die("Fail: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestDeadLetterCrashSIGKILL: see the top of this file.
func TestDeadLetterCrashSIGKILL(t *testing.T) {
	dir := t.TempDir()
	enqueued := map[string]bool{}
	moved := 0
	for cycle := 1; cycle <= dlqCrashCycles; cycle++ {
		env := []string{dlqCrashEnvDir + "=" + dir, dlqCrashEnvCycle + "=" + strconv.Itoa(cycle)}
		lines, _, stderr := crashtest.Kill(t, "TestDeadLetterCrashChild", env, 20*time.Second, 50*time.Millisecond, 250*time.Millisecond)
		if len(stderr) > 0 {
			t.Fatalf("cycle %d: child wrote to stderr:\n%s", cycle, stderr)
		}
		for _, l := range lines {
			if len(l) < 3 || l[:2] != "E " {
				t.Fatalf("cycle %d: child printed %q", cycle, l)
			}
			enqueued[l[2:]] = true
		}
		b, err := Open(dir, Options{Sync: log.SyncAlways, SegmentSize: 64 << 10, MaintenanceInterval: -1, Logger: quiet})
		if err != nil {
			t.Fatalf("cycle %d: Open: %v", cycle, err)
		}
		// Finish whatever move the kill cut short, as the server's first
		// maintenance run would.
		if err := b.Maintain(); err != nil {
			t.Fatalf("cycle %d: Maintain: %v", cycle, err)
		}
		where := map[string]string{}
		for _, name := range []string{"jobs", "jobs.dlq"} {
			q, err := b.Queue(name)
			if err != nil {
				t.Fatalf("cycle %d: %v", cycle, err)
			}
			live, dead, err := qcrashListAll(q)
			if err != nil {
				t.Fatalf("cycle %d: %s: %v", cycle, name, err)
			}
			for _, m := range []map[uint64]Message{live, dead} {
				for id, msg := range m {
					at := fmt.Sprintf("%s/%d", name, id)
					if prev, dup := where[string(msg.Body)]; dup {
						t.Errorf("cycle %d: %q is at %s and at %s", cycle, msg.Body, prev, at)
					}
					where[string(msg.Body)] = at
					if name == "jobs.dlq" {
						moved++
					}
				}
			}
		}
		for body := range enqueued {
			if _, ok := where[body]; !ok {
				t.Errorf("cycle %d: %q, whose enqueue returned, is in neither queue", cycle, body)
			}
		}
		if err := b.Close(); err != nil {
			t.Fatalf("cycle %d: Close: %v", cycle, err)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d cycles: %d messages enqueued, dead-letter queue seen holding %d in all checks", dlqCrashCycles, len(enqueued), moved)
	if moved == 0 {
		t.Fatal("no message was ever moved: the test did not test moves")
	}
}
