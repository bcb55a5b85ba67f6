package boundedread

import (
	"fmt"
	"io"
	"os"
)

// TooLargeError is the error of a file or stream larger than the limit it was read with.
type TooLargeError struct {
	// Name is the file's path, or the name the stream was read under.
	Name string
	// Limit is the most bytes that were allowed.
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %d bytes", e.Name, e.Limit)
}

// File reads the file at path to its end, if it holds at most limit bytes. A path that cannot
// be opened or read returns the *os.PathError of that; a larger file a *TooLargeError, after
// reading no more than limit+1 bytes of it.
func File(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Reader(f, path, limit)
}

// Reader reads r to its end, if it yields at most limit bytes; name names r in the
// *TooLargeError of a larger one. Read errors are returned as they are.
func Reader(r io.Reader, name string, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Name: name, Limit: limit}
	}
	return b, nil
}
