package queue

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spoolq/spool/log/crashtest"
)

// The ordered crash test kills children that enqueue into an ordered queue
// with deduplication keys drawn from a set that grows by ocrashNewKeys a
// cycle, so every child sends new keys and keys the children before it
// sent: after each SIGKILL and restart, a key
// must stand for the one id it was first acknowledged with, and the
// queue must hold one message per key.
const (
	ocrashEnvDir   = "SPOOL_ORDERED_CRASH_DIR"
	ocrashEnvCycle = "SPOOL_ORDERED_CRASH_CYCLE"
	ocrashCycles   = 12
	ocrashNewKeys  = 40
)

// TestOrderedCrashChild is the child of TestOrderedCrashSIGKILL: producers
// enqueue messages with random keys and print "E <key> <id>" once each
// Enqueue returned.
func TestOrderedCrashChild(t *testing.T) {
	dir := crashtest.Child(t, ocrashEnvDir)
	cycle, err := strconv.Atoi(os.Getenv(ocrashEnvCycle))
	if err != nil {
		crashtest.Die("bad %s: %v", ocrashEnvCycle, err)
	}
	b, err := Open(dir, qcrashOptions())
	if err != nil {
		crashtest.Die("Open: %v", err)
	}
	q, err := b.Queue("q")
	if err != nil {
		if q, err = b.CreateNew("q", ConfigUpdate{}, CreateOptions{Ordered: true}); err != nil {
			crashtest.Die("CreateNew: %v", err)
		}
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for p := range 3 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(p)))
			for {
				msgs := make([]NewMessage, 1+rng.IntN(3))
				for i := range msgs {
					k := rng.IntN(ocrashNewKeys * cycle)
					msgs[i] = NewMessage{Body: []byte(fmt.Sprint("c", cycle)), Group: fmt.Sprint("g", k%7), DedupID: fmt.Sprint("k", k)}
				}
				ids, err := q.Enqueue(msgs)
				if err != nil {
					crashtest.Die("Enqueue: %v", err)
				}
				mu.Lock()
				for i, id := range ids {
					fmt.Fprintf(out, "E %s %d\n", msgs[i].DedupID, id)
				}
				err = out.Flush()
				mu.Unlock()
				if err != nil {
					crashtest.Die("stdout: %v", err)
				}
			}
		})
	}
	wg.Wait()
}

func TestOrderedCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test kills child processes; skipped in -short mode")
	}
	dir := t.TempDir()
	idOf := map[string]uint64{}
	for cycle := 1; cycle <= ocrashCycles; cycle++ {
		env := []string{ocrashEnvDir + "=" + dir, ocrashEnvCycle + "=" + strconv.Itoa(cycle)}
		lines, _, stderr := crashtest.Kill(t, "TestOrderedCrashChild", env, qcrashLineWait, qcrashMinKill, qcrashMaxKill)
		if len(stderr) > 0 {
			t.Fatalf("cycle %d: child wrote to stderr:\n%s", cycle, stderr)
		}
		for _, l := range lines {
			f := strings.Fields(l)
			id, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if len(f) != 3 || f[0] != "E" || err != nil {
				t.Fatalf("cycle %d: line %q", cycle, l)
			}
			if was, ok := idOf[f[1]]; ok && was != id {
				t.Fatalf("cycle %d: key %s was acknowledged as id %d, and now as %d", cycle, f[1], was, id)
			}
			idOf[f[1]] = id
		}
	}
	b := mustOpen(t, dir, Options{Logger: quiet, MaintenanceInterval: -1, SegmentSize: 64 << 10})
	q, err := b.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]uint64{}
	if err := q.PeekEach(0, 1000, func(m Message) error { // at most ocrashKeys messages
		if other, dup := held[m.DedupID]; dup {
			return fmt.Errorf("key %s is held twice: ids %d and %d", m.DedupID, other, m.ID)
		}
		held[m.DedupID] = m.ID
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for key, id := range idOf {
		if held[key] != id {
			t.Fatalf("key %s: acknowledged as id %d, the queue holds %d", key, id, held[key])
		}
	}
	if len(idOf) < ocrashNewKeys*ocrashCycles/2 {
		t.Fatalf("only %d keys were acknowledged over %d cycles: the test did too little", len(idOf), ocrashCycles)
	}
	t.Logf("%d keys acknowledged, %d held, over %d cycles", len(idOf), len(held), ocrashCycles)
}
