package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// ErrInUse is returned by Inspect when a running agent holds the journal.
var ErrInUse = errors.New("journal in use by a running agent")

// Inspect opens the journal in dir read-only, without creating, repairing or locking it
// against the agent, and returns the number of Tasks it holds. It returns an error wrapping
// fs.ErrNotExist when there is no journal yet, and ErrInUse when an agent has it open (it
// waits at most wait, at least 10ms, for the lock). For letsbe-agent doctor.
func Inspect(dir string, wait time.Duration) (n int, err error) {
	wait = max(wait, 10*time.Millisecond) // bbolt waits forever on 0
	path := filepath.Join(dir, FileName)
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	defer func() {
		if p := recover(); p != nil {
			n, err = 0, fmt.Errorf("journal %s corrupt: %v", path, p)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: wait})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return 0, fmt.Errorf("%s: %w", path, ErrInUse)
	}
	if err != nil {
		return 0, fmt.Errorf("open journal %s: %w", path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		return 0, fmt.Errorf("read journal %s: %w", path, err)
	}
	return n, nil
}
