package journal_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"

	"github.com/letsbe/sysadmin-agent/api/store/journal"
)

func TestInspect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := journal.Inspect(dir, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no journal: err = %v, want not exist", err)
	}
	j, err := journal.Open(dir, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := journal.Inspect(dir, 0); !errors.Is(err, journal.ErrInUse) {
		t.Errorf("open journal: err = %v, want ErrInUse", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := journal.Inspect(dir, 0); err != nil || n != 0 {
		t.Errorf("closed journal: %d, %v; want 0, nil", n, err)
	}
	if err := os.WriteFile(filepath.Join(dir, journal.FileName), []byte("not a journal"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.Inspect(dir, 0); err == nil || errors.Is(err, journal.ErrInUse) {
		t.Errorf("garbage journal: err = %v, want an error", err)
	}
}
