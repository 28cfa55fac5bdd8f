// Package outfile writes the files a user names for ghostwatch's output (a report, a profile)
// whole or not at all: under a temporary name beside the destination, renamed into place when
// complete, removed if anything fails (a full disk included). A destination that exists and is
// not a regular file (/dev/stdout, /dev/full, a pipe) is written in place: renaming over it would
// replace the device or pipe with a file, and it has no half-written state to hide.
package outfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// File is an output file being written. Commit puts it in place; Abort, once it is not
// needed, removes what Commit did not put in place.
type File struct {
	*os.File
	path      string
	inPlace   bool // the destination is not a regular file: written as it is, nothing to rename
	committed bool
}

// Create starts writing path, failing now if it cannot be written there.
func Create(path string) (*File, error) {
	st, err := os.Stat(path)
	switch {
	case err == nil && st.IsDir():
		return nil, &os.PathError{Op: "create", Path: path, Err: syscall.EISDIR}
	case err == nil && !st.Mode().IsRegular():
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		return &File{File: f, path: path, inPlace: true}, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		// Named by the destination: the temporary name means nothing to the user.
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &File{File: f, path: path}, nil
}

// Commit ends the file and puts it in place; on failure nothing is left at the destination.
func (f *File) Commit() error {
	var err error
	if !f.inPlace {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !f.inPlace {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		f.Abort()
		return err
	}
	f.committed = true
	return nil
}

// Abort drops the file unless Commit put it in place.
func (f *File) Abort() {
	if f.committed {
		return
	}
	f.Close()
	if !f.inPlace {
		os.Remove(f.Name())
	}
}

// WriteFile writes data to path whole or not at all.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}
