// Package log is spool's message log: one directory of append-only segment
// files in spool's own format, a group-committing writer, pread-based
// readers, torn-tail repair, rotation, removal and rewrite (compaction) of
// sealed segments, and offline verification.
//
// It speaks bytes, records and ids, and knows nothing of queues: a Record
// is an id, a timestamp, a flags byte, opaque metadata and an opaque body.
//
// # Files
//
// A log directory holds segment files named by the first id they may
// hold, 20 digits zero padded: 00000000000000000001.seg. The newest
// segment is the only one appended to; the others are sealed and never
// modified in place. A segment rotates when the next commit round would take
// it past Options.SegmentSize; the new segment's base is the next id, so
// sealed segment k holds ids [base_k, base_k+1 - 1]. Rewrite may leave gaps
// inside that range, never ids outside it. "<name>.tmp" is a rewrite in
// progress; Open deletes it (the original is still in place).
//
// All integers are little-endian. All checksums are CRC-32C (Castagnoli).
//
// # File header (32 bytes)
//
//	0      4      6      8                   16                  24     28     32
//	+------+------+------+-------------------+-------------------+------+------+
//	| "SPLG"| ver | rsv  |     base id       |   created (ns)    | rsv  | crc  |
//	+------+------+------+-------------------+-------------------+------+------+
//
//	Field    Type    Description
//	magic    [4]byte "SPLG"
//	version  uint16  format version, 1; a verified header of another version
//	                 makes Open fail with ErrUnsupportedVersion (never "repair")
//	reserved uint16  zero
//	base id  uint64  first id the segment may hold; must equal the file name
//	created  int64   unix nanoseconds when the file was created
//	reserved uint32  zero
//	crc      uint32  CRC-32C of bytes 0..28
//
// The header is written and fsynced, and the directory fsynced, before any
// frame goes in, so a crash during rotation leaves either a whole header or
// a file with no frames.
//
// # Frames
//
// After the header come frames. A frame is the unit of a group commit
// (one per commit round, unless the round exceeds MaxFramePayload), of
// compression and of checksumming. Every frame starts on an 8-byte boundary:
// the stored payload is followed by zero padding up to the next multiple of
// 8. Padding is not covered by any checksum and carries nothing.
//
//	0      4      8  9  10     12     16                  24     28     32     36     40
//	+------+------+--+--+------+------+-------------------+------+------+------+------+
//	|stored|frame |co|rs| rsv  |count |     first id      | span |decode| rsv  |header|
//	| len  | crc  |dc|v |      |      |                   |      | len  |      | crc  |
//	+------+------+--+--+------+------+-------------------+------+------+------+------+
//	| stored payload (stored len bytes) ...                      | zero padding to 8  |
//	+------------------------------------------------------------+--------------------+
//
//	Field       Type    Description
//	stored len  uint32  payload bytes on disk, 1..MaxFramePayload
//	frame crc   uint32  CRC-32C over header bytes 0..4 and 8..32, then the
//	                    stored payload: the whole frame but its checksums
//	codec       uint8   1 none, 2 s2 block, 3 zstd frame; 0 is invalid, so an
//	                    all-zero header (never written) is never a frame
//	reserved    uint8, uint16  zero
//	count       uint32  records in the frame, ≥ 1
//	first id    uint64  id of the first record, ≥ 1
//	span        uint32  last id - first id (≥ count-1: ids strictly increase)
//	decode len  uint32  payload bytes after decoding, ≤ MaxFramePayload;
//	                    equals stored len for codec none
//	reserved    uint32  zero
//	header crc  uint32  CRC-32C of header bytes 0..36
//
// The header checksum lets a reader skip a frame by its header alone
// (looking for an id) without trusting a length that might be damaged; the
// frame checksum covers everything a reader returns. Decoders bound every
// length by the format limit and by the bytes left in the file before they
// allocate; a frame's decoded length bounds what decompression may produce.
//
// # Records
//
// The decoded payload is count records back to back:
//
//	Field       Type            Description
//	id delta    uvarint         id - previous record's id; 0 for the first
//	                            record (whose id is the frame's first id),
//	                            ≥ 1 after; the last id must be first + span
//	time delta  zigzag varint   time - previous record's time (0 before the first)
//	flags       uint8           the caller's, opaque to the log
//	meta len    uvarint         then meta len bytes of metadata (opaque)
//	body len    uvarint         then body len bytes of body (opaque)
//
// The payload must be consumed exactly. Ids across frames strictly
// increase, within a segment and across segments.
//
// # Invariants
//
//   - Ids start at 1, are assigned by Append with no gaps, and are never
//     reused once a frame holding them was acknowledged.
//   - A frame is visible to readers only once fully written (and under
//     SyncAlways fsynced); readers never look past the published length.
//   - Nothing that fails a checksum or does not parse is ever returned as
//     a record.
//   - A sealed segment changes only by Rewrite, which writes a complete new
//     file, fsyncs it, renames it over the old one and fsyncs the directory.
//
// # Recovery (Open)
//
//  1. Delete "*.seg.tmp" files: interrupted rewrites; originals are intact.
//  2. Check every segment's header. A verified header of an unknown version
//     fails Open. A damaged header of a sealed segment is reported; its
//     frames still verify on their own.
//  3. Walk the newest segment frame by frame, verifying both checksums,
//     the records and id order, tracking the end of the last valid frame.
//  4. At a frame that does not verify, look for any later frame (at 8-byte
//     aligned offsets) that does. If there is one, the bad range is
//     corruption: report it, leave it in place, continue after it. If there
//     is none, it is a torn tail, a write that never completed and so was
//     never acknowledged: truncate the file to the last valid frame, fsync.
//     A tail that is all zeros past the last valid frame is the space
//     SyncAlways preallocates (see Writing): it is cut back the same way,
//     but it is not damage and is not reported.
//  5. A newest segment whose header is torn and which holds no valid frame
//     is what a crash during rotation leaves: recreate it.
//  6. The next id is the newest segment's last id + 1 (its base if empty).
//
// Sealed segments are not walked at Open: their frames are verified when
// read, and by Verify, which walks everything and changes nothing.
//
// # Writing
//
// Append hands its records to the committer goroutine. The committer takes
// every request waiting (up to 4 MiB), encodes them into one frame, writes
// it with one pwrite, fsyncs once (SyncAlways), and only then releases every
// caller of the round: throughput grows with concurrency while each caller
// still waits for its own fsync. A failed write or fsync cuts the tail back
// to where the round started (truncate + fsync) and fails every caller of
// the round; if even that fails the log refuses appends (ErrFailed) until a
// later round manages the cut, so it never appends after garbage.
//
// Under SyncAlways the committer keeps up to 256 KiB of zeros written past
// the newest frame (never past SegmentSize, unless one frame is bigger).
// An fsync after a write into space the file already has does not change
// the file's length, so there is no new length to journal, and it is 20-30%
// faster on ext4 (bench/RESULTS.md, session 14). The zeros are never a
// frame (an all-zero header does not verify) and readers never look past
// the published length. Sealing, Release and Close truncate the file back
// to its last frame and fsync, so only the segment being written, and only
// after a crash, ever has such a tail; Open cuts it (Recovery, step 4).
// The format does not change: a version that predates preallocation also
// opens such a file, and takes the zeros for a torn tail and cuts them.
//
// # Idle logs
//
// A Log holds files and a goroutine only while it is used: a data
// directory may hold thousands of logs, most of them idle. Open closes
// every file once recovery is done; a segment file opens again on the first
// read or write that needs it, and the committer goroutine starts with the
// first Append. Release, which the owner calls once the log has been idle a
// while, stops the committer (after it served what was sent), fsyncs what
// SyncInterval or SyncNone left unsynced, closes every file and frees the
// write buffers. None of this changes what is durable or what readers see:
// a released log is the log a fresh Open would find.
package log
