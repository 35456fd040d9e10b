package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/pprof"
)

// Who used the CPU of an in-process run: client and server share one
// process, so the bench labels their goroutines (pprof labels are
// inherited by every goroutine a labelled one starts: the transport's
// connection goroutines on the client side, the http.Server's connection
// goroutines and the broker's committers on the server side) and runs
// the CPU profiler over the measured window. Samples without a label are
// the runtime's own (background GC workers, timers).
const (
	sideLabel  = "spool_bench"
	sideClient = "client"
	sideServer = "server"
)

// withSide runs f with the goroutine labelled as one side.
func withSide(ctx context.Context, side string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels(sideLabel, side), f)
}

// cpuProfile is a running CPU profile.
type cpuProfile struct{ buf bytes.Buffer }

// startCPUProfile starts the profiler, or fails when one already runs
// (go test -cpuprofile, a program profiling itself).
func startCPUProfile() (*cpuProfile, error) {
	p := &cpuProfile{}
	if err := pprof.StartCPUProfile(&p.buf); err != nil {
		return nil, err
	}
	return p, nil
}

// cpuShares is CPU time by side, in nanoseconds.
type cpuShares struct {
	client, server, other int64
}

func (s cpuShares) total() int64 { return s.client + s.server + s.other }

// stop ends the profile and adds its samples up by side.
func (p *cpuProfile) stop() (cpuShares, error) {
	pprof.StopCPUProfile()
	return sharesOf(p.buf.Bytes())
}

// sharesOf reads a gzipped profile.proto (the format of runtime/pprof,
// github.com/google/pprof/proto/profile.proto) far enough to add up
// sample values by the sideLabel label. Only what is needed is decoded:
// Profile.sample (2), Profile.string_table (6), Sample.value (2),
// Sample.label (3), Label.key (1) and Label.str (2).
func sharesOf(gz []byte) (cpuShares, error) {
	var s cpuShares
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return s, fmt.Errorf("cpu profile: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, 256<<20))
	if err != nil {
		return s, fmt.Errorf("cpu profile: %w", err)
	}
	type sample struct {
		value       int64 // the last value: CPU nanoseconds
		labelKey    int64 // string indexes; -1 when unlabelled
		labelString int64
	}
	var samples []sample
	var strs []string
	err = protoFields(data, func(field int, wire int, v uint64, b []byte) error {
		switch {
		case field == 2 && wire == 2:
			sm := sample{labelKey: -1, labelString: -1}
			err := protoFields(b, func(field, wire int, v uint64, b []byte) error {
				switch {
				case field == 2 && wire == 0:
					sm.value = int64(v)
				case field == 2 && wire == 2: // packed values
					for len(b) > 0 {
						x, n := binary.Uvarint(b)
						if n <= 0 {
							return errors.New("bad packed value")
						}
						sm.value, b = int64(x), b[n:]
					}
				case field == 3 && wire == 2:
					var key, str int64 = -1, -1
					if err := protoFields(b, func(field, wire int, v uint64, _ []byte) error {
						if wire == 0 && field == 1 {
							key = int64(v)
						} else if wire == 0 && field == 2 {
							str = int64(v)
						}
						return nil
					}); err != nil {
						return err
					}
					if str >= 0 && key >= 0 {
						sm.labelKey, sm.labelString = key, str
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			samples = append(samples, sm)
		case field == 6 && wire == 2:
			strs = append(strs, string(b))
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("cpu profile: %w", err)
	}
	for _, sm := range samples {
		side := ""
		if sm.labelKey >= 0 && sm.labelKey < int64(len(strs)) && strs[sm.labelKey] == sideLabel &&
			sm.labelString < int64(len(strs)) {
			side = strs[sm.labelString]
		}
		switch side {
		case sideClient:
			s.client += sm.value
		case sideServer:
			s.server += sm.value
		default:
			s.other += sm.value
		}
	}
	return s, nil
}

// protoFields calls f for each field of a protobuf message: v for varint
// fields, b for length-delimited ones; fixed-width fields are skipped.
func protoFields(data []byte, f func(field, wire int, v uint64, b []byte) error) error {
	for len(data) > 0 {
		key, n := binary.Uvarint(data)
		if n <= 0 {
			return errors.New("bad field key")
		}
		data = data[n:]
		field, wire := int(key>>3), int(key&7)
		var v uint64
		var b []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(data)
			if n <= 0 {
				return errors.New("bad varint")
			}
			data = data[n:]
		case 1:
			if len(data) < 8 {
				return errors.New("short fixed64")
			}
			data = data[8:]
			continue
		case 2:
			l, n := binary.Uvarint(data)
			if n <= 0 || l > uint64(len(data)-n) {
				return errors.New("bad length")
			}
			b, data = data[n:n+int(l)], data[n+int(l):]
		case 5:
			if len(data) < 4 {
				return errors.New("short fixed32")
			}
			data = data[4:]
			continue
		default:
			return fmt.Errorf("unsupported wire type %d", wire)
		}
		if err := f(field, wire, v, b); err != nil {
			return err
		}
	}
	return nil
}
