package log_test

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/spoolq/spool/log"
	"github.com/spoolq/spool/log/faultfs"
)

// TestPowerCutWithReleasesKeepsEveryAcknowledgedAppend is the power-cut
// test with the log released (files closed, committer stopped) between
// appends, under each sync policy's promise: with SyncAlways every
// acknowledged append survives a power cut at any operation.
func TestPowerCutWithReleasesKeepsEveryAcknowledgedAppend(t *testing.T) {
	scenario := func(l *log.Log, g *ledger) {
		for i := range 30 {
			if g.append(l, bytes.Repeat([]byte{byte('a' + i%26)}, 60+i)) != nil {
				return
			}
			if i%3 == 0 {
				l.Release(0)
			}
		}
	}
	counts := map[faultfs.Op]int{}
	ops := []faultfs.Op{faultfs.OpWrite, faultfs.OpSync, faultfs.OpSyncDir, faultfs.OpOpen}
	{
		fsys := faultfs.New()
		l := openOn(t, fsys, 512)
		base := map[faultfs.Op]int{}
		for _, op := range ops {
			base[op] = fsys.Count(op)
		}
		scenario(l, newLedger())
		for _, op := range ops {
			counts[op] = fsys.Count(op) - base[op]
		}
		l.Close()
	}
	for _, op := range ops {
		total := counts[op]
		if total == 0 {
			t.Fatalf("scenario performs no %s: the test would prove nothing", op)
		}
		for n := 1; n <= total; n++ {
			fsys := faultfs.New()
			l := openOn(t, fsys, 512)
			var calls atomic.Int64
			var cut atomic.Bool
			fsys.SetHook(func(o faultfs.Op, _ string) error {
				if cut.Load() {
					return syscall.EIO
				}
				if o == op && calls.Add(1) == int64(n) {
					cut.Store(true)
					fsys.PowerCut()
					return syscall.EIO
				}
				return nil
			})
			g := newLedger()
			scenario(l, g)
			l.Close()
			fsys.SetHook(nil)
			l2 := openOn(t, fsys, 512)
			t.Run(fmt.Sprintf("%s %d of %d", op, n, total), func(t *testing.T) { g.check(t, l2) })
			l2.Release(0)
			if _, _, err := l2.Append([]log.Record{{Body: []byte("after power returns")}}); err != nil {
				t.Fatalf("%s %d: Append after reopen and release: %v", op, n, err)
			}
			l2.Close()
		}
	}
}
