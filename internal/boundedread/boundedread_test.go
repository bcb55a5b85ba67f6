package boundedread

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

const limit = 16

func TestFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	atLimit := strings.Repeat("a", limit)
	tests := []struct {
		name    string
		path    string
		want    string
		wantErr func(error) bool
	}{
		{name: "empty", path: write("empty", ""), want: ""},
		{name: "under the limit", path: write("small", "hello"), want: "hello"},
		{name: "exactly at the limit", path: write("at", atLimit), want: atLimit},
		{name: "one byte over", path: write("over", atLimit+"b"), wantErr: tooLarge(filepath.Join(dir, "over"))},
		{name: "far over", path: write("far", strings.Repeat("x", 10*limit)), wantErr: tooLarge(filepath.Join(dir, "far"))},
		{name: "missing", path: filepath.Join(dir, "missing"), wantErr: func(err error) bool { return errors.Is(err, fs.ErrNotExist) }},
		{name: "a directory", path: dir, wantErr: func(err error) bool {
			var pe *fs.PathError
			return errors.As(err, &pe) && pe.Path == dir && errors.Is(err, syscall.EISDIR)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := File(tt.path, limit)
			check(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// TestFileEndless reads a FIFO whose writer never stops: it gets the limit and one byte, no
// more, and closes the FIFO (the writer then fails with EPIPE).
func TestFileEndless(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer w.Close()
		chunk := []byte(strings.Repeat("z", 4096))
		for {
			if _, err := w.Write(chunk); err != nil {
				done <- err
				return
			}
		}
	}()
	got, err := File(path, limit)
	check(t, got, err, "", tooLarge(path))
	if err := <-done; !errors.Is(err, syscall.EPIPE) {
		t.Errorf("writer: %v, want EPIPE once the reader closed the FIFO", err)
	}
}

func TestReader(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	atLimit := strings.Repeat("a", limit)
	tests := []struct {
		name    string
		r       io.Reader
		want    string
		wantErr func(error) bool
	}{
		{name: "exactly at the limit", r: strings.NewReader(atLimit), want: atLimit},
		{name: "over the limit", r: strings.NewReader(atLimit + "b"), wantErr: tooLarge("-")},
		{name: "read error", r: iotest.ErrReader(boom), wantErr: func(err error) bool { return errors.Is(err, boom) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Reader(tt.r, "-", limit)
			check(t, got, err, tt.want, tt.wantErr)
		})
	}
}

// tooLarge matches the *TooLargeError of name at limit.
func tooLarge(name string) func(error) bool {
	return func(err error) bool {
		var tl *TooLargeError
		return errors.As(err, &tl) && *tl == TooLargeError{Name: name, Limit: limit} &&
			err.Error() == name+" is larger than 16 bytes"
	}
}

func check(t *testing.T, got []byte, err error, want string, wantErr func(error) bool) {
	t.Helper()
	if wantErr != nil {
		if err == nil || !wantErr(err) {
			t.Fatalf("error %v (%T), not the one wanted", err, err)
		}
		if got != nil {
			t.Errorf("got %d bytes with the error, want none", len(got))
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("content (-want +got):\n%s", diff)
	}
}
