package gadget

import (
	"encoding/binary"
	"strings"
	"testing"
)

type pair struct{ A, B uint32 }

// What an iterator wrote is cut into whole records; a torn record, or output where none is
// expected, is an error and never read.
func TestRecords(t *testing.T) {
	data := binary.NativeEndian.AppendUint32(nil, 1)
	data = binary.NativeEndian.AppendUint32(data, 2)
	data = binary.NativeEndian.AppendUint32(data, 3)
	data = binary.NativeEndian.AppendUint32(data, 4)
	got, err := records[pair]("p", data)
	if err != nil || len(got) != 2 || got[0] != (pair{1, 2}) || got[1] != (pair{3, 4}) {
		t.Errorf("two records: %v, %v", got, err)
	}
	if got, err := records[pair]("p", nil); err != nil || len(got) != 0 {
		t.Errorf("no output: %v, %v", got, err)
	}
	if _, err := records[pair]("p", data[:12]); err == nil || !strings.Contains(err.Error(), "not a whole number of 8-byte records") {
		t.Errorf("a torn record: %v", err)
	}
	if got, err := records[struct{}]("census", nil); err != nil || got != nil {
		t.Errorf("an iterator that writes nothing: %v, %v", got, err)
	}
	if _, err := records[struct{}]("census", data); err == nil || !strings.Contains(err.Error(), "should write none") {
		t.Errorf("output from an iterator that should write none: %v", err)
	}
}
