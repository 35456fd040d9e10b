// Package beanstalk speaks beanstalkd's text protocol (protocol.txt of
// beanstalkd 1.12/1.13): it reads and parses the commands a client sends
// and encodes every reply. It has no state and no queue words: the
// beanstalkd-protocol server that maps tubes and jobs onto package queue
// sits on top of it.
//
// # Reading commands
//
// A Reader wraps one connection. Next returns one Command at a time: a
// Verb and its arguments, and for put the job body. A malformed command
// comes back as an error wrapping one of ErrBadFormat, ErrUnknownCommand,
// ErrExpectedCRLF or ErrJobTooBig; the connection goes on with the next
// command, as in beanstalkd, and the server replies AppendError(err).
// io.EOF is a clean end between commands; io.ErrUnexpectedEOF an end
// inside one (beanstalkd closes such a connection without a reply).
//
// The Reader reproduces beanstalkd's byte-level behaviour (prot.c), which
// a reading of protocol.txt alone gets wrong in places:
//
//   - A line ends at "\r\n"; a lone "\n" is an ordinary byte. Only the
//     first '\r' of a 224-byte window counts: "stats\r\r\n" is not a line,
//     and gets no reply until the window fills. A window holding no line
//     end is thrown away, and so is every following one until a line
//     ends; then the reply is BAD_FORMAT. Windows are 224 bytes from where
//     the command (or the previous thrown-away window) began, so the
//     "\r\n" of a 225-byte line straddles two windows and is missed: the
//     line after it is swallowed into the BAD_FORMAT.
//   - Commands are matched by prefix, in beanstalkd's order: "quitx" is
//     quit; "reserved", "stats-job" (no space) and "peek-ready " are
//     BAD_FORMAT (a known command with trailing bytes); "put", "delete",
//     "use" without their space are UNKNOWN_COMMAND, so is "\r\n";
//     "pause-tubefoo 5" pauses tube foo.
//   - A NUL byte anywhere in a line is BAD_FORMAT.
//   - Numbers (ids, pri, delay, ttr, bytes, pause) are read_u64/read_u32:
//     any number of spaces (not tabs) before each, then decimal digits
//     only (no sign; leading zeros fine) fitting 64 or 32 bits; the last
//     argument must end the line (a trailing space is BAD_FORMAT).
//   - kick's bound is strtoul: leading tabs and other C white space, a
//     sign, trailing garbage are all accepted ("kick -1" is 2^64-1,
//     "kick 5abc" is 5), then truncated to 32 bits ("kick 4294967296"
//     kicks none); only no digits or a value over 2^64-1 is BAD_FORMAT.
//   - reserve-with-timeout is read as 1.13 reads it: spaces, then digits,
//     a value up to 2^31-1, anything after it ignored ("5x" is 5). 1.12
//     used strtol, taking "-1" as no timeout and "x" as 0; this package
//     answers those BAD_FORMAT, as 1.13 does.
//   - Tube names (use, watch, ignore, stats-tube: the whole rest of the
//     line) are 1 to 200 bytes of [A-Za-z0-9+/;.$_()-], not starting with
//     '-': ".", "..", "a/b" and "a-" are names, "use  a" (two spaces) and
//     "use a " are not.
//   - put: a body of exactly the maximum job size is accepted. A put over
//     it is JOB_TOO_BIG only after its <bytes> and two more bytes have
//     been read and thrown away, whatever they are; that check comes
//     before the one for bytes after <bytes>, so "put 0 0 1 70000x" also
//     swallows 70002 bytes. Any other malformed put line is BAD_FORMAT at
//     once and its body is read as the next command line. A body not
//     followed by "\r\n" is EXPECTED_CRLF, the two bytes read in its
//     place consumed.
//   - beanstalkd counts in cmd-put the puts that end in JOB_TOO_BIG,
//     EXPECTED_CRLF or BAD_FORMAT for trailing bytes, and in
//     cmd-pause-tube a pause-tube with a well-formed but invalid name
//     ("-x", over 200 bytes): for those Next returns the Verb with the
//     error. (It also spends a job id on an EXPECTED_CRLF put.)
//
// # Memory
//
// A Reader holds a 4 KiB bufio buffer and a 224-byte line, whatever the
// client sends: an over-long line and a too-big body are read through
// the buffer and dropped. A put's body is allocated per job, as its bytes
// arrive: 4 KiB first, doubling up to the announced size, never past it,
// so its capacity is at most the maximum job size and a client announcing
// a big body it never sends costs 4 KiB. Not a pool: the body is handed
// to the queue, which keeps it.
//
// # Replies
//
// The Append functions append one whole reply each, "\r\n" included:
// AppendInserted, AppendBuriedID, AppendReserved, AppendFound,
// AppendUsing, AppendWatching, AppendKickedCount, AppendWord (DELETED,
// RELEASED, BURIED, TOUCHED, KICKED, PAUSED) and AppendError for the error
// words. AppendJobStats, AppendTubeStats, AppendServerStats and
// AppendTubeList write the OK replies with beanstalkd's YAML: "---\n",
// then "key: value\n" lines in beanstalkd's key order (which is not
// protocol.txt's), or "- name\n" lines. String values are quoted as 1.13
// quotes them (tube, name, version, hostname, os, platform); 1.12 quoted
// only version. List entries are never quoted.
package beanstalk
