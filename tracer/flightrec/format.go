// Package flightrec is the agent's flight record: events kept on disk in append-only segment
// files, compressed, indexed by time, gadget, kind and container, rotated by size and age and
// bounded in bytes; and the reader that `ghostwatch history` (and anything else) queries it with,
// while an agent writes it too.
//
// What is kept of an event is what `trace` writes: its JSON line (the contract) and its table
// cells, so that history prints both formats byte for byte as trace would have. Beside them, in
// an index, the event's time, gadget, kind, actor container and the containers it is about, so
// that a query reads only the parts of a block that can match.
//
// A segment is a file header and a sequence of frames. A frame is a data block (the events of up
// to a second, or of BlockSize bytes) or a marker (the agent started or stopped, a restart found
// the agent killed, events were lost). A data block holds its events grouped by gadget and actor
// container, each group in three zstd frames (index, JSON lines, table rows), and a directory of
// its groups in front of them; reading a block is one read of its directory, then only the groups
// a query wants.
package flightrec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// Segment files: NNNNNNNNNN.gwr, numbered in the order they were begun.
const (
	segmentExt    = ".gwr"
	segmentDigits = 10
)

// fileMagic begins every segment, followed by the format version (4 bytes) and 4 reserved bytes.
var fileMagic = [8]byte{'G', 'W', 'R', 'E', 'C', 'O', 'R', 'D'}

const (
	fileHeaderSize = 16
	formatVersion  = 1
)

// A frame: magic, version, type, 2 reserved bytes, directory length, body length, and the CRC-32C
// of the 16 bytes before it and the directory. The body's zstd frames carry their own checksums.
var frameMagic = [4]byte{'G', 'W', 'R', 'F'}

const frameHeaderSize = 20

// Frame types.
const (
	frameData   = 1
	frameMarker = 2
)

// maxDir bounds a directory a reader accepts: more is a corrupt length, not a block.
const maxDir = 16 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rowSep separates a kept table row's cells.
const rowSep = 0x1f

func segmentName(n uint64) string { return fmt.Sprintf("%0*d%s", segmentDigits, n, segmentExt) }

// parseSegmentName returns the number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	if len(name) != segmentDigits+len(segmentExt) || name[segmentDigits:] != segmentExt {
		return 0, false
	}
	var n uint64
	for _, c := range name[:segmentDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func fileHeader() []byte {
	b := make([]byte, fileHeaderSize)
	copy(b, fileMagic[:])
	binary.LittleEndian.PutUint32(b[8:], formatVersion)
	return b
}

func checkFileHeader(f io.ReaderAt) error {
	b := make([]byte, fileHeaderSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return errIncomplete
	}
	if [8]byte(b[:8]) != fileMagic {
		return errors.New("not a ghostwatch flight record segment")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVersion {
		return fmt.Errorf("flight record format %d: this ghostwatch reads %d", v, formatVersion)
	}
	return nil
}

// appendFrame appends a frame of the given type with its directory and body.
func appendFrame(b []byte, typ byte, dir, body []byte) []byte {
	start := len(b)
	b = append(b, frameMagic[:]...)
	b = append(b, formatVersion, typ, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(dir)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	crc := crc32.Update(crc32.Checksum(b[start:], castagnoli), castagnoli, dir)
	b = binary.LittleEndian.AppendUint32(b, crc)
	b = append(b, dir...)
	return append(b, body...)
}

// errIncomplete is a frame that does not end within the file: being written, or torn by a crash.
var errIncomplete = errors.New("incomplete frame")

// errCorrupt is a frame whose header or directory does not check.
var errCorrupt = errors.New("corrupt frame")

// frame is one frame read from a segment: its directory, and where its body is.
type frame struct {
	typ     byte
	off     int64 // of the frame
	dir     []byte
	bodyOff int64
	bodyLen int64
}

func (f *frame) end() int64 { return f.bodyOff + f.bodyLen }

// readFrame reads the frame at off of a file of the given size; buf is reused for the directory.
func readFrame(r io.ReaderAt, off, size int64, buf []byte) (frame, []byte, error) {
	var h [frameHeaderSize]byte
	if off+frameHeaderSize > size {
		return frame{}, buf, errIncomplete
	}
	if _, err := r.ReadAt(h[:], off); err != nil {
		return frame{}, buf, fmt.Errorf("reading frame: %w", err)
	}
	if [4]byte(h[:4]) != frameMagic || h[4] != formatVersion {
		return frame{}, buf, errCorrupt
	}
	dirLen := int64(binary.LittleEndian.Uint32(h[8:]))
	bodyLen := int64(binary.LittleEndian.Uint32(h[12:]))
	if dirLen > maxDir {
		return frame{}, buf, errCorrupt
	}
	fr := frame{typ: h[5], off: off, bodyOff: off + frameHeaderSize + dirLen, bodyLen: bodyLen}
	if fr.end() > size {
		return frame{}, buf, errIncomplete
	}
	if cap(buf) < int(dirLen) {
		buf = make([]byte, dirLen)
	}
	fr.dir = buf[:dirLen]
	if _, err := r.ReadAt(fr.dir, off+frameHeaderSize); err != nil {
		return frame{}, buf, fmt.Errorf("reading frame: %w", err)
	}
	crc := crc32.Update(crc32.Checksum(h[:16], castagnoli), castagnoli, fr.dir)
	if crc != binary.LittleEndian.Uint32(h[16:]) {
		return frame{}, buf, errCorrupt
	}
	return fr, buf, nil
}

// size returns a file's size.
func size(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// dirWriter appends a block directory's fields.
type dirWriter struct{ b []byte }

func (w *dirWriter) uint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *dirWriter) int(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *dirWriter) str(s string) {
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// dirReader reads what a dirWriter wrote; the first error sticks and later reads return zero.
type dirReader struct {
	b   []byte
	err error
}

func (r *dirReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *dirReader) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a number of items that each take at least one byte, so that a corrupt count cannot
// make a reader allocate more than the directory holds.
func (r *dirReader) count() int {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return 0
	}
	return int(n)
}

func (r *dirReader) bytes() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}
