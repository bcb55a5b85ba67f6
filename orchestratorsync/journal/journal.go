package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// FileName is the journal's file in the state directory.
const FileName = "journal.db"

var bucketTasks = []byte("tasks")

// maxBatch bounds the changes written in one transaction.
const maxBatch = 512

// Journal is a store.Persister on bbolt. Open it, Load it into a store.Memory created with
// store.WithPersister(journal), and Close it last.
type Journal struct {
	db   *bolt.DB
	log  logr.Logger
	path string

	queue   chan pending
	closeMu sync.RWMutex
	closed  bool
	done    chan struct{}

	depth    atomic.Int64 // Tasks in the journal
	failures atomic.Int64 // failed commits
}

type pending struct {
	ev   store.Event
	done chan struct{}
}

// Open opens (or creates) the journal in dir. A file that cannot be opened as a journal is
// renamed aside (journal.db.corrupt-<time>) and a fresh one is created; the error of a fresh
// journal that cannot be created is returned.
func Open(dir string, log logr.Logger) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := openDB(path)
	if err != nil && !errors.Is(err, bolterrors.ErrTimeout) {
		aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
		log.Error(err, "JOURNAL UNREADABLE: moving it aside and starting with an empty journal; tasks it held may need attention", "journal", path, "movedTo", aside)
		if rerr := os.Rename(path, aside); rerr != nil {
			return nil, fmt.Errorf("move unreadable journal %s aside: %w", path, rerr)
		}
		db, err = openDB(path)
	}
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("journal %s is locked: is another agent running with this AGENT_STATE_DIR?", path)
		}
		return nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	j := &Journal{db: db, log: log, path: path, queue: make(chan pending, 4096), done: make(chan struct{})}
	go j.commitLoop()
	return j, nil
}

func openDB(path string) (db *bolt.DB, err error) {
	// bbolt panics on some kinds of corruption: treat that as unreadable too.
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("journal corrupt: %v", p)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTasks)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// Touch every page once, so a corrupt journal is found now, not in the middle of a write.
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error { return nil })
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Load reads every Task of the journal into mem (which must be empty and have no subscribers
// yet). Entries that cannot be decoded are logged and dropped. It returns the number loaded.
func (j *Journal) Load(mem *store.Memory) (int, error) {
	var bad [][]byte
	n := 0
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			var t agentv1.Task
			if err := json.Unmarshal(v, &t); err != nil || t.Name != string(k) {
				j.log.Error(err, "JOURNAL ENTRY UNREADABLE: dropping it", "key", string(k))
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			t.ResourceVersion = ""
			if err := mem.Restore(&t); err != nil {
				return err
			}
			n++
			return nil
		})
	})
	if err != nil {
		return n, fmt.Errorf("read journal: %w", err)
	}
	if len(bad) > 0 {
		_ = j.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketTasks)
			for _, k := range bad {
				_ = b.Delete(k)
			}
			return nil
		})
	}
	j.depth.Store(int64(n))
	return n, nil
}

// Persist implements store.Persister: it queues the change and returns a function that waits
// until it is durable. A Task whose final report was accepted leaves the journal.
//
// The removal of a Task whose final report was accepted is queued in order but not waited for:
// if it is lost, the final report goes out once more, and an identical repeat is a no-op for
// the orchestrator.
func (j *Journal) Persist(ev store.Event) func() {
	st := ev.Task.Status
	p := pending{ev: ev, done: make(chan struct{})}
	j.closeMu.RLock()
	defer j.closeMu.RUnlock()
	if j.closed {
		close(p.done)
		return func() {}
	}
	j.queue <- p
	if ev.Type == store.Deleted || st.Report.FinalReported {
		return func() {}
	}
	return func() { <-p.done }
}

// commitLoop writes queued changes, as many as are waiting at once, in one transaction: one
// fsync for all of them.
func (j *Journal) commitLoop() {
	defer close(j.done)
	batch := make([]pending, 0, maxBatch)
	for p := range j.queue {
		batch = append(batch[:0], p)
	drain:
		for len(batch) < maxBatch {
			select {
			case p, ok := <-j.queue:
				if !ok {
					break drain
				}
				batch = append(batch, p)
			default:
				break drain
			}
		}
		j.write(batch)
		for _, p := range batch {
			close(p.done)
		}
	}
}

func (j *Journal) write(batch []pending) {
	var delta int64
	err := j.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks)
		delta = 0
		for _, p := range batch {
			key := []byte(p.ev.Task.Name)
			existed := b.Get(key) != nil
			if p.ev.Type == store.Deleted || p.ev.Task.Status.Report.FinalReported {
				if existed {
					if err := b.Delete(key); err != nil {
						return err
					}
					delta--
				}
				continue
			}
			v, err := json.Marshal(p.ev.Task)
			if err != nil {
				return err
			}
			if err := b.Put(key, v); err != nil {
				return err
			}
			if !existed {
				delta++
			}
		}
		return nil
	})
	if err != nil {
		// The in-memory store stays the working set: tasks go on, only durability suffers.
		j.failures.Add(1)
		j.log.Error(err, "JOURNAL WRITE FAILED: tasks continue but may not survive a restart", "journal", j.path, "changes", len(batch))
		return
	}
	j.depth.Add(delta)
}

// Depth returns the number of Tasks in the journal (unreported ones).
func (j *Journal) Depth() int64 { return j.depth.Load() }

// Failures returns the number of failed journal writes.
func (j *Journal) Failures() int64 { return j.failures.Load() }

// Close writes what is queued and closes the database.
func (j *Journal) Close() error {
	j.closeMu.Lock()
	if !j.closed {
		j.closed = true
		close(j.queue)
	}
	j.closeMu.Unlock()
	<-j.done
	return j.db.Close()
}
