package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram's layout, HDR style: values below histSub are counted
// exactly; above, each power-of-two range [2^k, 2^(k+1)) is cut into
// histSub/2 equal buckets, so a bucket is at most 1/64 of its values wide
// and the midpoint reported for a quantile is within 1/128 (0.8%) of
// every value in its bucket.
const (
	histSubBits = 7
	histSub     = 1 << histSubBits // 128
	histHalf    = histSub / 2
	// histMaxBits bounds the range: values from 2^40 ns (18 minutes) up
	// land in the last bucket. No bench operation waits that long.
	histMaxBits = 40
	histBuckets = histSub + (histMaxBits-histSubBits)*histHalf
)

// Histogram counts durations in fixed log-spaced buckets: bounded memory
// (18 KiB) whatever the number of samples, quantiles within 0.8%, and
// Record is a few atomic adds, so many goroutines can share one. The zero
// value is empty and ready; a Histogram must not be copied after use.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
	max    atomic.Int64
}

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits // ≥ 1
	if shift > histMaxBits-histSubBits {
		return histBuckets - 1
	}
	return histSub + (shift-1)*histHalf + int(v>>uint(shift)) - histHalf
}

// histBounds returns bucket i's lowest value and width.
func histBounds(i int) (low, width uint64) {
	if i < histSub {
		return uint64(i), 1
	}
	j := i - histSub
	shift := uint(j/histHalf + 1)
	top := uint64(j%histHalf + histHalf)
	return top << shift, 1 << shift
}

// Record adds one sample; negative durations count as 0.
func (h *Histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[histIndex(uint64(v))].Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Max returns the largest sample, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Mean returns the mean of the samples, exactly (0 when empty).
func (h *Histogram) Mean() time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sum.Load() / n)
}

// Quantile returns the q-quantile (0 < q ≤ 1; 0.99 is p99): the value of
// the sample of rank ceil(q·n), as the midpoint of its bucket (exact below
// 128 ns, within 0.8% above), never above Max; the top rank is Max itself.
// Empty: 0. Safe to call
// while samples are being recorded (the answer is then approximate).
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = min(max(rank, 1), n)
	if rank == n {
		return h.Max() // the largest sample is known exactly
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			if i == histBuckets-1 {
				return h.Max() // past the range: only the max is known
			}
			low, width := histBounds(i)
			v := time.Duration(low + width/2)
			if width == 1 {
				v = time.Duration(low)
			}
			return min(v, h.Max())
		}
	}
	return h.Max()
}
