package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// On-disk format.
//
// A segment file holds frames back to back, with no file header:
//
//	+----------------+----------------+-------------------+
//	| length  u32 LE | crc32c  u32 LE | payload (length)  |
//	+----------------+----------------+-------------------+
//
// The CRC-32C (Castagnoli) covers the four length bytes and the payload, so a
// corrupted length is caught as surely as a corrupted payload. A segment's
// name is the offset of its first record, %020d.seg; record i of the segment
// (counting from 0) has offset base+i.
const (
	frameHeader  = 8
	segExt       = ".seg"
	checkpointNm = "checkpoint"
	lockName     = "LOCK"
	// maxFrameLen bounds a payload; a larger length field is corruption.
	maxFrameLen = 1<<31 - 1
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends rec framed to dst.
func appendFrame(dst, rec []byte) []byte {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(rec)))
	c := crc32.Update(0, castagnoli, h[0:4])
	c = crc32.Update(c, castagnoli, rec)
	binary.LittleEndian.PutUint32(h[4:8], c)
	dst = append(dst, h[:]...)
	return append(dst, rec...)
}

// frameLen returns the payload length announced by a frame header.
func frameLen(h []byte) int64 { return int64(binary.LittleEndian.Uint32(h[0:4])) }

// frameOK reports whether header h and payload p form a valid frame.
func frameOK(h, p []byte) bool {
	c := crc32.Update(0, castagnoli, h[0:4])
	c = crc32.Update(c, castagnoli, p)
	return c == binary.LittleEndian.Uint32(h[4:8])
}

func segName(base uint64) string { return fmt.Sprintf("%020d%s", base, segExt) }

// parseSegName returns the base offset of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segExt)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	v, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// The checkpoint file is 16 bytes: "HSC1", the committed offset (u64 LE) and
// a CRC-32C of the first 12 bytes. It is replaced atomically (write a
// temporary file, fsync, rename, fsync the directory), so a torn checkpoint
// never replaces a good one.
const checkpointMagic = "HSC1"

func encodeCheckpoint(off uint64) []byte {
	b := make([]byte, 16)
	copy(b, checkpointMagic)
	binary.LittleEndian.PutUint64(b[4:12], off)
	binary.LittleEndian.PutUint32(b[12:16], crc32.Checksum(b[:12], castagnoli))
	return b
}

var errBadCheckpoint = errors.New("malformed checkpoint")

func decodeCheckpoint(b []byte) (uint64, error) {
	if len(b) != 16 || string(b[:4]) != checkpointMagic ||
		crc32.Checksum(b[:12], castagnoli) != binary.LittleEndian.Uint32(b[12:16]) {
		return 0, errBadCheckpoint
	}
	return binary.LittleEndian.Uint64(b[4:12]), nil
}
