package log_test

import (
	"bytes"
	"testing"

	"github.com/spoolq/spool/log"
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
	powerCutAtEveryOperation(t, scenario, func(l *log.Log) { l.Release(0) })
}
