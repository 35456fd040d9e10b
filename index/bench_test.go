package index

import "testing"

// benchBacklog is how many ready messages the throughput benchmarks keep
// queued: enough that the ready order spans many chunks.
const benchBacklog = 1 << 16

// benchTakeAll inserts benchBacklog messages with priorities from pri (nil:
// Insert, the default priority), then takes every one in ready order
// (NextReady, Lease, Ack), as a receive and an ack do. It reports ns per
// message for the insert and the take together.
func benchTakeAll(b *testing.B, insert func(tb *Table, id uint64)) {
	b.Helper()
	for b.Loop() {
		tb := NewTable()
		for id := uint64(1); id <= benchBacklog; id++ {
			insert(tb, id)
		}
		for {
			id, ok := tb.NextReady()
			if !ok {
				break
			}
			if err := tb.Lease(id, 1, far); err != nil {
				b.Fatal(err)
			}
			if err := tb.Ack(id); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchBacklog, "ns/msg")
}

// BenchmarkInsertTake is the single-priority path every queue takes today.
func BenchmarkInsertTake(b *testing.B) {
	benchTakeAll(b, func(tb *Table, id uint64) { tb.Insert(id, uint32(id), 0, 0) })
}

// BenchmarkNackCycle leases a message and nacks it to the back, over and
// over, behind a backlog: the requeue heap's path.
func BenchmarkNackCycle(b *testing.B) {
	tb := NewTable()
	for id := uint64(1); id <= benchBacklog; id++ {
		tb.Insert(id, uint32(id), 0, 0)
	}
	for b.Loop() {
		id, _ := tb.NextReady()
		if err := tb.Lease(id, 1, far); err != nil {
			b.Fatal(err)
		}
		if err := tb.Nack(id, false, tb.MaxID(), 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}
