// Package tfevents reads and writes TensorFlow event files (events.out.tfevents.*), the format TensorBoard
// reads: TFRecord framing around serialized Event protos (package tfeventspb).
//
// # Framing
//
// A file is a sequence of records, each
//
//	uint64 length            little endian
//	uint32 masked_crc32c(length bytes)
//	byte   data[length]      a serialized Event
//	uint32 masked_crc32c(data)
//
// where masked_crc32c(b) = ((c >> 15) | (c << 17)) + 0xa282ead8 and c is the CRC-32C (Castagnoli) of b
// (tensorflow/core/lib/io/record_writer.cc, tensorflow/core/lib/hash/crc32c.h).
//
// # Reading
//
// [ParseRecords] splits a byte slice into records; [Logdir] follows
// every events.out.tfevents.* file below a directory or an S3 prefix, one run per directory, and keeps the
// scalar series ([Logdir.Scalars]). A record cut short at the end of a file is not an error (the writer
// has not finished it); a record whose checksum does not match is skipped and reported as a [Corruption].
//
// # Writing
//
// [Writer] writes the file_version record, then events; [Writer.AddScalar] writes TF2-style scalars
// (rank-0 DT_FLOAT tensors with the "scalars" plugin metadata, as tf.summary.scalar does).
package tfevents

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

const (
	// headerLen is the length (8 bytes) plus its masked CRC (4 bytes).
	headerLen = 12
	// footerLen is the masked CRC of the data.
	footerLen = 4
	// MaxRecordLen bounds a record's data length; a longer length is treated as corruption (TensorBoard's
	// own summaries are far smaller; a GraphDef of a large model is tens of MiB).
	MaxRecordLen = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaskedCRC32C returns TFRecord's masked CRC-32C of b.
func MaskedCRC32C(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// AppendRecord appends data framed as one TFRecord to dst and returns the extended slice.
func AppendRecord(dst, data []byte) []byte {
	var hdr [headerLen]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(hdr[8:], MaskedCRC32C(hdr[:8]))
	dst = append(dst, hdr[:]...)
	dst = append(dst, data...)
	return binary.LittleEndian.AppendUint32(dst, MaskedCRC32C(data))
}

// Record is one record's data and where its header starts in the file.
type Record struct {
	Offset int64
	Data   []byte
}

// Corruption describes bytes of a file that were skipped because a checksum did not match.
type Corruption struct {
	// File is the file's path (set by Tail and Logdir; empty from ParseRecords).
	File string
	// Offset is where the skipped bytes start; Length how many were skipped.
	Offset, Length int64
	// Reason says which check failed.
	Reason string
}

func (c Corruption) Error() string {
	return fmt.Sprintf("tfevents: %s: offset %d (%d bytes skipped): %s", c.File, c.Offset, c.Length, c.Reason)
}

// ParseRecords splits buf, which starts at file offset base, into complete records. It returns the
// records, how many bytes of buf they (and any skipped corrupt bytes) consumed, and the corruptions found.
// Bytes after the last complete record (a record still being written) are not consumed: pass them again,
// followed by more data, on the next call. Returned Data slices alias buf.
//
// A record whose data checksum fails is skipped whole (its length is trustworthy: the length checksum
// passed). A header whose length checksum fails is not trusted: ParseRecords scans forward byte by byte
// for the next header whose length checksum and data checksum both pass, and skips the bytes before it.
// If no such header is complete yet, it stops at the corruption without consuming it, so that the caller
// can retry once the file has grown; callers report the same Corruption only once (see Logdir).
func ParseRecords(buf []byte, base int64) (recs []Record, consumed int, bad []Corruption) {
	pos := 0
	for {
		n, ok, reason := recordAt(buf, pos)
		switch {
		case ok:
			recs = append(recs, Record{Offset: base + int64(pos), Data: buf[pos+headerLen : pos+headerLen+n]})
			pos += headerLen + n + footerLen
			continue
		case reason == "":
			// Incomplete: wait for more bytes.
			return recs, pos, bad
		case reason == reasonDataCRC:
			bad = append(bad, Corruption{Offset: base + int64(pos), Length: int64(headerLen + n + footerLen), Reason: reason})
			pos += headerLen + n + footerLen
			continue
		}
		// Length checksum failed (or an absurd length): resynchronise on the next valid record.
		next := -1
		for i := pos + 1; i+headerLen+footerLen <= len(buf); i++ {
			if _, ok, _ := recordAt(buf, i); ok {
				next = i
				break
			}
		}
		if next < 0 {
			bad = append(bad, Corruption{Offset: base + int64(pos), Length: int64(len(buf) - pos), Reason: reason})
			return recs, pos, bad
		}
		bad = append(bad, Corruption{Offset: base + int64(pos), Length: int64(next - pos), Reason: reason})
		pos = next
	}
}

const (
	reasonLengthCRC = "length checksum mismatch"
	reasonTooLong   = "record length exceeds MaxRecordLen"
	reasonDataCRC   = "data checksum mismatch"
)

// recordAt checks the record starting at buf[pos]. It returns the data length and ok when the record is
// complete and valid; reason "" with !ok when the record is incomplete (not corrupt, as far as can tell).
func recordAt(buf []byte, pos int) (n int, ok bool, reason string) {
	if len(buf)-pos < headerLen {
		return 0, false, ""
	}
	hdr := buf[pos : pos+headerLen]
	if binary.LittleEndian.Uint32(hdr[8:]) != MaskedCRC32C(hdr[:8]) {
		return 0, false, reasonLengthCRC
	}
	l := binary.LittleEndian.Uint64(hdr[:8])
	if l > MaxRecordLen {
		return 0, false, reasonTooLong
	}
	n = int(l)
	if len(buf)-pos < headerLen+n+footerLen {
		return n, false, ""
	}
	data := buf[pos+headerLen : pos+headerLen+n]
	if binary.LittleEndian.Uint32(buf[pos+headerLen+n:]) != MaskedCRC32C(data) {
		return n, false, reasonDataCRC
	}
	return n, true, ""
}
