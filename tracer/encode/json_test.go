package encode

import "testing"

// A fragment is rendered again for a new key or from another writer state, and copied otherwise;
// either way the bytes are what rendering gives.
func TestMemo(t *testing.T) {
	var m Memo[uint64]
	renders := 0
	write := func(j *JSON, key uint64) {
		m.Append(j, key, func(j *JSON) { renders++; j.Uint("n", key) })
	}
	object := func(keys ...uint64) string {
		var j JSON
		j.Object()
		for _, k := range keys {
			write(&j, k)
		}
		j.End()
		return string(j.B)
	}
	for _, tc := range []struct {
		keys    []uint64
		want    string
		renders int
	}{
		{[]uint64{7}, `{"n":7}`, 1},
		{[]uint64{7}, `{"n":7}`, 0},                   // copied
		{[]uint64{8}, `{"n":8}`, 1},                   // another key
		{[]uint64{8, 8}, `{"n":8,"n":8}`, 1},          // the second is not first: rendered with its comma
		{[]uint64{8, 8, 8}, `{"n":8,"n":8,"n":8}`, 2}, // one rendering is kept: the first is rendered again, the third copied
	} {
		renders = 0
		if got := object(tc.keys...); got != tc.want || renders != tc.renders {
			t.Errorf("keys %v: %s with %d renders, want %s with %d", tc.keys, got, renders, tc.want, tc.renders)
		}
	}
}
