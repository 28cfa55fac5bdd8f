package gadget

import (
	"fmt"
	"io"
	"unsafe"

	"github.com/ghostwatch/ghostwatch/tracer/attach"
)

// ReadIter runs an iterator program of a loaded object once (each run walks the kernel's tasks,
// files... afresh) and returns what it wrote: whole values of R, each written with one
// bpf_seq_write of the C struct R was generated from. An iterator run for what it does in the
// kernel (a census, marking namespaces) writes nothing and is read with R struct{}. A record cut
// short, or output from an iterator that should write none, is an error: the object and this
// program disagree.
func ReadIter[R any](s *attach.Set, program string) ([]R, error) {
	it := s.Iter(program)
	if it == nil {
		return nil, fmt.Errorf("iterator %s is not attached", program)
	}
	rd, err := it.Open()
	if err != nil {
		return nil, fmt.Errorf("running iterator %s: %w", program, err)
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("reading iterator %s: %w", program, err)
	}
	return records[R](program, data)
}

// records splits what an iterator wrote into whole values of R.
func records[R any](program string, data []byte) ([]R, error) {
	size := int(unsafe.Sizeof(*new(R)))
	if size == 0 {
		if len(data) != 0 {
			return nil, fmt.Errorf("iterator %s wrote %d bytes, where it should write none", program, len(data))
		}
		return nil, nil
	}
	if len(data)%size != 0 {
		return nil, fmt.Errorf("iterator %s wrote %d bytes, not a whole number of %d-byte records", program, len(data), size)
	}
	out := make([]R, len(data)/size)
	for i := range out {
		out[i] = *(*R)(unsafe.Pointer(&data[i*size]))
	}
	return out, nil
}
