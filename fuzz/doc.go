// Package fuzz holds spool's native Go fuzz targets: one for every decoder
// spool has, that is, every piece of code that parses bytes it did not just
// produce itself. Today that is the segment format of package log: single
// frames (FuzzDecodeFrame, FuzzEncodeDecodeFrame) and whole log directories
// of arbitrary segment files (FuzzOpen, which also runs Verify, iterates,
// appends and reopens). Later decoders — state events, snapshots, HTTP
// input — get their targets here too.
//
// The decoders of package index have theirs in index_fuzz_test.go:
// FuzzDecodeEntry (state-log entries, also with their leading CRC
// recomputed; a minimally encoded entry must re-encode to its own bytes),
// FuzzDecodeMeta (message metadata: limits and decode(encode(m)) == m) and
// FuzzDecodeSnapshot (snapshots, also with their trailing CRC recomputed:
// the decoded table must be self-consistent — counts against Get and
// Scan, NextReady offering exactly the ready messages —, must survive a
// re-encode unchanged in everything it shows, and must still snapshot to
// bytes that decode after its messages are leased and nacked).
//
// Topics (round 2) brought two more: FuzzDecodeConfigFile (queue.json,
// topic.json and sub.json: what decodes re-encodes to the same config) and
// FuzzParsePosition (a subscription's start and seek target: what parses
// prints back as itself); the entry and snapshot seeds cover the seek and
// skip events and a subscription's table (snapshot version 2, whose
// version-1 inputs may re-encode a few bytes longer).
//
// The package has no code of its own; this file exists so that
// `go list ./fuzz/...` finds it. The targets live in log_fuzz_test.go and
// their seed corpora in testdata/fuzz/<Target>/, which `go test ./fuzz`
// runs as ordinary tests together with the seeds the targets add in code.
//
// Checksums stop random mutation at the first CRC, so the targets also
// feed the decoders a copy of their input with every checksum recomputed
// (FuzzDecodeFrame always, FuzzOpen when its fix argument is true): that
// is how mutations reach the decompressors, the record parser and the id
// ordering checks behind the CRCs.
//
// Run one target at a time:
//
//	go test -run='^$' -fuzz='^FuzzDecodeFrame$' -fuzztime=30s ./fuzz
//
// FuzzHTTP sends arbitrary methods, paths, queries, content types and
// bodies to an in-process server: it must never panic, never answer a 5xx
// but 503 and 507, and give every 4xx the JSON error body.
//
// The protocol adapters each have theirs: FuzzBeanstalkCommands, the
// miniqueue and stream command decoders, and for SQS FuzzVerify (SigV4),
// FuzzSQSQuery (query-protocol forms) and FuzzSQSJSON (AWS JSON 1.0
// bodies): an SQS reply must be 200, a 4xx or 503, well-formed JSON or XML
// in SQS's success or error shape.
//
// CI runs each target for 10 s. Go spends up to -fuzzminimizetime (60 s
// by default) shrinking every new input that adds coverage before it
// mutates further, which for FuzzOpen (about a millisecond per run: a
// temporary directory, Verify, Open, reads, an append and a reopen) can
// take a short run's whole budget; add -fuzzminimizetime=1s to short runs.
//
// A failure leaves its input in testdata/fuzz/<Target>/; once the bug it
// found is fixed, keep the file so the input stays a regression test.
package fuzz
