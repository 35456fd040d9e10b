package log

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// A compressed payload is kept only when it saves at least 1/8 of the raw
// bytes: below that the decode cost on every read outweighs the disk saved.
func worthKeeping(compressed, raw int) bool { return compressed <= raw-raw/8 }

// zstd coders are large; build them once, on first use, and share them
// (EncodeAll and DecodeAll are safe for concurrent use). Most logs never
// touch zstd: only Rewrite of cold segments writes it.
var (
	zstdEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	})
	zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(MaxFramePayload),
			zstd.WithDecodeAllCapLimit(true))
	})
)

// compressPayload returns raw compressed with codec, or raw itself with
// CodecNone when compression does not pay. The output lives in *scratch,
// which is grown as needed and kept for the next call, so a steady stream
// of frames compresses without allocating.
func compressPayload(codec Codec, raw []byte, scratch *[]byte) (stored []byte, used Codec, err error) {
	switch codec {
	case CodecS2:
		// s2 only writes into dst when it can hold the worst case.
		*scratch = grow(*scratch, s2.MaxEncodedLen(len(raw)))
		out := s2.Encode(*scratch, raw)
		if worthKeeping(len(out), len(raw)) {
			return out, CodecS2, nil
		}
	case CodecZstd:
		enc, err := zstdEncoder()
		if err != nil {
			return nil, 0, fmt.Errorf("zstd encoder: %w", err)
		}
		out := enc.EncodeAll(raw, (*scratch)[:0])
		*scratch = out
		if worthKeeping(len(out), len(raw)) {
			return out, CodecZstd, nil
		}
	}
	return raw, CodecNone, nil
}

// decodePayload returns the decoded payload of a verified frame, using buf
// for the output when it is large enough. The header's decoded length bounds
// the output, so a crafted payload cannot make it allocate more.
func decodePayload(h frameHeader, stored, buf []byte) ([]byte, error) {
	switch h.codec {
	case CodecNone:
		return stored, nil
	case CodecS2:
		n, err := s2.DecodedLen(stored)
		if err != nil {
			return nil, fmt.Errorf("s2 payload: %w", err)
		}
		if n != int(h.decodedLen) {
			return nil, fmt.Errorf("s2 payload decodes to %d bytes, header says %d", n, h.decodedLen)
		}
		out, err := s2.Decode(grow(buf, n), stored)
		if err != nil {
			return nil, fmt.Errorf("s2 payload: %w", err)
		}
		return out, nil
	case CodecZstd:
		dec, err := zstdDecoder()
		if err != nil {
			return nil, fmt.Errorf("zstd decoder: %w", err)
		}
		out, err := dec.DecodeAll(stored, grow(buf, int(h.decodedLen))[:0])
		if err != nil {
			return nil, fmt.Errorf("zstd payload: %w", err)
		}
		if len(out) != int(h.decodedLen) {
			return nil, fmt.Errorf("zstd payload decodes to %d bytes, header says %d", len(out), h.decodedLen)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown codec %d", h.codec)
}

// grow returns a slice of length n, reusing buf when it is large enough.
func grow(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]byte, n)
}
