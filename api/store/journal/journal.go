package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// FileName is the journal's file in the state directory.
const FileName = "journal.db"

var (
	bucketTasks = []byte("tasks")
	bucketMeta  = []byte("meta")
	keyProbe    = []byte("probe")
)

// tasksFill is the Tasks bucket's fill percent: every node a commit touches is written
// whole, so full pages mean fewer pages per commit.
const tasksFill = 1.0

// maxArena bounds the room for records a write keeps for the next one.
const maxArena = 4 << 20

// maxBatch bounds the changes written in one transaction.
const maxBatch = 512

// DefaultProbeInterval is how often an unhealthy journal tries to write again.
const DefaultProbeInterval = time.Second

// Journal is a memory.Persister and a store.Delivered on bbolt. Open it, Load it into a
// memory.Store created with memory.WithPersister(journal), and Close it last.
type Journal struct {
	db    *bolt.DB
	log   logr.Logger
	path  string
	now   func() time.Time
	probe time.Duration
	// observe, when set, is told how long each write transaction took and how it ended.
	observe func(elapsed time.Duration, err error)

	queue   chan *pending
	closeMu sync.RWMutex
	closed  bool
	done    chan struct{}

	depth    atomic.Int64 // Tasks in the journal
	failures atomic.Int64 // changes that could not be written

	health health
	dlv    delivered

	unwrittenMu sync.Mutex
	unwritten   map[string]struct{} // Tasks with a change that failed and is not written yet

	// Owned by the commit loop.
	present       map[string]struct{}    // the Tasks in the journal, by name
	dirty         map[string]store.Event // latest change of a Task that failed to be written
	failedCreates map[string]struct{}    // Tasks whose creation failed: later changes are refused
	probeBytes    int                    // size of the probe write while unhealthy
	// Reused by each write: its changes, the index of each Task's last change, and what a
	// transaction changed of the index of delivered reports and of present.
	freshBuf   []op
	arena      []byte // the keys and records of a write's changes
	lastBuf    map[string]int
	undoBuf    []indexChange
	changedBuf []presence
}

// pending is one change waiting for its commit: a Task's change (ev) or a delivered report.
type pending struct {
	ev  *store.Event
	rec *deliveredRecord
	err error // set before done is done
	// lazy: nobody waits for it (see Persist); it is committed with the next change that is
	// waited for, or after lazyDelay.
	lazy bool
	// waited: done was added to, and is done once the change is committed or failed.
	waited bool
	done   sync.WaitGroup
}

// newPending returns a pending change of ev, in one allocation, that done waits for unless lazy.
func newPending(ev store.Event, lazy bool) *pending {
	pe := &struct {
		p  pending
		ev store.Event
	}{ev: ev}
	pe.p.ev, pe.p.lazy = &pe.ev, lazy
	if !lazy {
		pe.p.waited = true
		pe.p.done.Add(1)
	}
	return &pe.p
}

// maxGroupWait bounds how long a commit waits for more changes when it has fewer than the
// last one.
const maxGroupWait = time.Millisecond

// lazyDelay is how long the commit loop holds changes nobody waits for before it commits
// them without another change.
const lazyDelay = 50 * time.Millisecond

// Option configures a Journal.
type Option func(*Journal)

// WithProbeInterval sets how often an unhealthy journal tries to write again
// (DefaultProbeInterval when zero).
func WithProbeInterval(d time.Duration) Option {
	return func(j *Journal) {
		if d > 0 {
			j.probe = d
		}
	}
}

// WithWriteObserver makes the journal call observe after each write transaction (one fsync)
// with its duration and error, from the commit loop: observe must be quick and must not call
// the journal.
func WithWriteObserver(observe func(elapsed time.Duration, err error)) Option {
	return func(j *Journal) { j.observe = observe }
}

// WithClock sets the journal's clock (time.Now by default), used for delivered reports.
func WithClock(now func() time.Time) Option { return func(j *Journal) { j.now = now } }

var (
	_ memory.Persister = (*Journal)(nil)
	_ store.Delivered  = (*Journal)(nil)
)

// Open opens (or creates) the journal in dir. A file that cannot be opened as a journal is
// renamed aside (journal.db.corrupt-<time>) and a fresh one is created; the error of a fresh
// journal that cannot be created is returned.
func Open(dir string, log logr.Logger, opts ...Option) (*Journal, error) {
	j, err := open(dir, log, opts...)
	if err != nil {
		return nil, err
	}
	go j.commitLoop()
	return j, nil
}

// open opens the journal without starting its commit loop.
func open(dir string, log logr.Logger, opts ...Option) (*Journal, error) {
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
	j := &Journal{
		db: db, log: log, path: path, now: time.Now, probe: DefaultProbeInterval,
		queue: make(chan *pending, 4096), done: make(chan struct{}),
		present: make(map[string]struct{}), lastBuf: make(map[string]int),
		dirty: make(map[string]store.Event), failedCreates: make(map[string]struct{}),
		unwritten: make(map[string]struct{}),
	}
	j.health.init()
	j.dlv.init()
	for _, o := range opts {
		o(j)
	}
	if err := upgradeDelivered(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("upgrade journal %s: move its delivered reports: %w", path, err)
	}
	if err := j.loadDelivered(); err != nil {
		db.Close()
		return nil, fmt.Errorf("read journal %s: %w", path, err)
	}
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
		for _, name := range [][]byte{bucketTasks, bucketMeta, bucketDeliveredLog} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// Touch every page once, so a corrupt journal is found now, not in the middle of a write.
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error { return nil })
		})
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Load reads every Task of the journal into mem (which must be empty and have no subscribers
// yet). Entries that cannot be decoded are logged and dropped. It returns the number loaded.
//
// An entry written by an agent before spec.taskID existed is named by its task id: it is
// read with that id as spec.taskID and the name agentv1.TaskName derives from it, and moved
// to that key, so the journal keeps loading what earlier versions wrote.
func (j *Journal) Load(mem *memory.Store) (int, error) {
	var bad [][]byte
	renamed := map[string]*agentv1.Task{} // by old key
	n := 0
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
			var t agentv1.Task
			if err := json.Unmarshal(v, &t); err != nil || t.Name != string(k) {
				j.log.Error(err, "JOURNAL ENTRY UNREADABLE: dropping it", "key", truncate(string(k)))
				bad = append(bad, append([]byte(nil), k...))
				return nil
			}
			if t.Spec.TaskID == "" {
				t.Spec.TaskID = t.Name
				if name := agentv1.TaskName(t.Name); name != t.Name {
					t.Name = name
					renamed[string(k)] = t.DeepCopy()
				}
			}
			t.ResourceVersion = ""
			if err := mem.Restore(&t); err != nil {
				return err
			}
			j.present[t.Name] = struct{}{}
			n++
			return nil
		})
	})
	if err != nil {
		return n, fmt.Errorf("read journal: %w", err)
	}
	if len(bad) > 0 || len(renamed) > 0 {
		err := j.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketTasks)
			for _, k := range bad {
				_ = b.Delete(k)
			}
			for old, t := range renamed {
				v, err := json.Marshal(t)
				if err != nil {
					return err
				}
				if err := b.Put([]byte(t.Name), v); err != nil {
					return err
				}
				if err := b.Delete([]byte(old)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && len(renamed) > 0 {
			return n, fmt.Errorf("journal: move entries of an earlier version to their names: %w", err)
		}
	}
	j.depth.Store(int64(n))
	return n, nil
}

// Persist implements memory.Persister: it queues the change and returns a function that waits
// until it is durable, or returns why it could not be made so. A Task whose final report was
// accepted leaves the journal.
//
// The removal of a Task whose final report was accepted, and a change made under
// store.Deferrable (a RUNNING report's delivery), are queued in order but not waited for, and
// committed with the next change that is (or after lazyDelay): if one is lost, a report goes
// out once more, and an identical repeat is a no-op for the orchestrator.
//
// A change of an existing Task that fails (the disk is full, say) is kept and written again,
// as the Task's latest state, when the journal can write again; a creation that fails is not:
// the store undoes it, and the journal refuses the Task's later changes until it is created
// again.
func (j *Journal) Persist(ev store.Event) func() error {
	lazy := ev.Type == store.Deleted || ev.Task.Status.Report.FinalReported || (ev.Deferrable && ev.Type == store.Modified)
	p := newPending(ev, lazy)
	if !j.enqueue(p) {
		return func() error { return errors.New("journal closed") }
	}
	if lazy {
		return func() error { return nil }
	}
	return func() error {
		p.done.Wait()
		return p.err
	}
}

// enqueue queues p for the commit loop; false when the journal is closed.
func (j *Journal) enqueue(p *pending) bool {
	j.closeMu.RLock()
	defer j.closeMu.RUnlock()
	if j.closed {
		return false
	}
	j.queue <- p
	return true
}

// commitLoop writes queued changes, as many as are waiting at once, in one transaction: one
// fsync for all of them. When fewer changes that are waited for have come than in the last
// commit, it waits a little for the others (half as long as the last commit took, at most
// maxGroupWait), as concurrent writers' next changes tend to come close together. Changes
// nobody waits for (lazy) are held until one that is waited for comes, or for lazyDelay, so
// that they share its commit. While the journal is unhealthy
// it probes: it writes again what failed (or a probe record) every probe interval until a
// write succeeds.
func (j *Journal) commitLoop() {
	defer close(j.done)
	batch := make([]*pending, 0, maxBatch)
	var tick *time.Ticker
	var probe <-chan time.Time
	lazyTimer := time.NewTimer(lazyDelay)
	lazyTimer.Stop()
	var lazyDue <-chan time.Time // set while batch holds lazy changes only
	// The changes waited for in the last commit, and how long it took.
	lastEager, lastCommit := 0, time.Duration(0)
	avgEager := 0 // a moving average of lastEager, times 16
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	defer func() {
		if tick != nil {
			tick.Stop()
		}
		lazyTimer.Stop()
	}()
	commit := func() {
		start := time.Now()
		j.write(batch, false)
		lastCommit = time.Since(start)
		for _, p := range batch {
			if p.waited {
				p.done.Done()
			}
		}
		batch = batch[:0]
		if lazyDue != nil {
			lazyTimer.Stop()
			lazyDue = nil
		}
	}
	for {
		select {
		case p, ok := <-j.queue:
			if !ok {
				if len(batch) > 0 {
					commit()
				}
				return
			}
			batch = append(batch, p)
			eager := 0 // changes waited for
			if !p.lazy {
				eager++
			}
			take := func(p *pending) {
				batch = append(batch, p)
				if !p.lazy {
					eager++
				}
			}
		drain:
			for len(batch) < maxBatch {
				select {
				case p, ok := <-j.queue:
					if !ok {
						break drain
					}
					take(p)
				default:
					break drain
				}
			}
			if wait := min(lastCommit/2, maxGroupWait); eager > 0 && eager < lastEager && avgEager >= 24 && wait > 0 {
				// Writers at once (the commits have had 1.5 or more on average): the last
				// commit had more of them, whose next changes may be on their way. Wait for
				// them a little (half as long as a commit takes, so at most half a commit's
				// latency), to share this commit's fsyncs. A lone writer never waits.
				gather.Reset(wait)
			gather:
				for len(batch) < maxBatch && eager < lastEager {
					select {
					case p, ok := <-j.queue:
						if !ok {
							break gather
						}
						take(p)
					case <-gather.C:
						break gather
					}
				}
				gather.Stop()
			}
			if eager > 0 {
				lastEager = eager
				avgEager += (16*eager - avgEager) / 8
			}
			switch {
			case eager > 0 || len(batch) >= maxBatch:
				commit()
			case lazyDue == nil:
				lazyTimer.Reset(lazyDelay)
				lazyDue = lazyTimer.C
			}
		case <-lazyDue:
			lazyDue = nil
			commit()
		case <-probe:
			j.write(nil, true)
		}
		switch unhealthy := j.health.get() != nil; {
		case unhealthy && tick == nil:
			tick = time.NewTicker(j.probe)
			probe = tick.C
		case !unhealthy && tick != nil:
			tick.Stop()
			tick, probe = nil, nil
		}
	}
}

// opKind says what an op does.
type opKind int

const (
	opPut       opKind = iota // write a Task
	opRemove                  // remove a Task
	opDelivered               // record a delivered report
	opProbe                   // write and drop a probe record
)

// op is one validated change of a batch. p is nil for a retry of an earlier change.
type op struct {
	p     *pending
	kind  opKind
	key   []byte
	value []byte
	ev    store.Event
	rec   *deliveredRecord
}

// write commits a batch: every change is validated first (a change the journal can never take,
// such as a key over bbolt's limit, fails alone); the valid ones, after the retries of changes
// that failed earlier, go in one transaction. If that transaction fails, each change is written
// in a transaction of its own, so that only the changes that cannot be written fail.
//
// A failure makes the journal unhealthy; only a probe makes it healthy again: the retries and a
// probe record as large as the largest change that failed, all written, so that a disk with room
// for small changes only stays unhealthy (rather than taking a task and failing it each time).
func (j *Journal) write(batch []*pending, probe bool) {
	fresh := j.freshBuf[:0]
	defer func() {
		clear(fresh) // keeps no change alive until the next write
		j.freshBuf = fresh[:0]
		// bbolt copied the records into its pages at commit: the room is free again.
		j.arena = j.arena[:0]
		if cap(j.arena) > maxArena {
			j.arena = nil
		}
	}()
	last := j.lastChanges(batch)
	for i, p := range batch {
		if p.lazy && p.ev != nil && p.ev.Type == store.Modified && last[p.ev.Task.Name] > i {
			continue // superseded by a later change of the Task, which carries all of it
		}
		if o, ok := j.validate(p); ok {
			fresh = append(fresh, o)
		}
	}
	// Retries after validation: a change in this batch supersedes its Task's retry.
	ops := fresh
	if retries := j.retries(); len(retries) > 0 {
		ops = append(retries, fresh...)
	}
	if probe {
		ops = append(ops, op{kind: opProbe, key: keyProbe})
	}
	if len(ops) == 0 {
		return
	}
	err := j.commit(ops)
	if err == nil {
		j.succeeded(ops)
		if probe {
			j.setHealth(nil)
		}
		return
	}
	if len(ops) == 1 {
		j.failed(ops[0], err)
		j.setHealth(err)
		return
	}
	var lastErr error
	undelivered := make(map[string]bool) // delivered reports that failed in this batch
	for _, o := range ops {
		if o.kind == opRemove && undelivered[string(o.key)] {
			// The Task's accepted report must be durable no later than its removal.
			j.failed(o, errors.New("its delivered report was not written"))
			continue
		}
		if _, ok := j.failedCreates[string(o.key)]; ok && o.kind == opPut && o.ev.Type != store.Added {
			// Its creation failed just now in this batch: the change must not outlive it.
			if o.p != nil {
				o.p.err = errors.New("the task's creation was not written")
			}
			continue
		}
		if err := j.commit([]op{o}); err != nil {
			j.failed(o, err)
			if o.kind == opDelivered {
				undelivered[string(o.key)] = true
			}
			lastErr = err
			continue
		}
		j.succeeded([]op{o})
	}
	if lastErr == nil {
		// Each change alone went in: the batch as a whole was too much for the room left.
		j.log.Info("Journal batch failed but each change was written alone", "changes", len(ops), "error", err.Error())
		if probe {
			j.setHealth(nil)
		}
		return
	}
	j.setHealth(lastErr)
}

// lastChanges returns the index of each Task's last change in batch.
func (j *Journal) lastChanges(batch []*pending) map[string]int {
	last := j.lastBuf
	clear(last)
	for i, p := range batch {
		if p.ev != nil {
			last[p.ev.Task.Name] = i
		}
	}
	return last
}

// retries returns the changes that failed earlier, for another attempt: their Tasks' latest
// states and delivered reports.
func (j *Journal) retries() []op {
	var ops []op
	// Delivered reports first: a Task's removal never goes in before its report.
	for _, rec := range j.dlv.takeRetries() {
		ops = append(ops, op{kind: opDelivered, key: j.arenaKey(rec.id), rec: rec})
	}
	for name, ev := range j.dirty {
		delete(j.dirty, name)
		if o, ok := j.validate(&pending{ev: &ev}); ok {
			ops = append(ops, o)
		}
	}
	return ops
}

// validate turns a queued change into an op, or fails it at once when the journal can never
// take it (such a change does not make the journal unhealthy).
func (j *Journal) validate(p *pending) (op, bool) {
	if p.ev == nil && p.rec == nil {
		return op{}, false // a Flush marker
	}
	if p.rec != nil {
		if err := checkKey(p.rec.id); err != nil {
			j.refuse(p, err)
			return op{}, false
		}
		return op{p: p, kind: opDelivered, key: j.arenaKey(p.rec.id), rec: p.rec}, true
	}
	ev := *p.ev
	name := ev.Task.Name
	if err := checkKey(name); err != nil {
		j.refuse(p, err)
		return op{}, false
	}
	// A newer change supersedes an older one that failed: it carries the whole Task.
	delete(j.dirty, name)
	if ev.Type == store.Deleted || ev.Task.Status.Report.FinalReported {
		delete(j.failedCreates, name)
		return op{p: p, kind: opRemove, key: j.arenaKey(name), ev: ev}, true
	}
	if ev.Type == store.Added {
		delete(j.failedCreates, name)
	} else if _, ok := j.failedCreates[name]; ok {
		j.refuse(p, errors.New("the task's creation was not written"))
		return op{}, false
	}
	// Key and record in the write's arena: bbolt keeps them only until the commit.
	// (Should it grow, the earlier changes' slices keep the array they point into.)
	start := len(j.arena)
	if cap(j.arena)-start < recordSize(ev.Task) {
		j.arena = slices.Grow(j.arena, max(recordSize(ev.Task), 64<<10))
	}
	kv, err := encodeTask(append(j.arena, name...), ev.Task)
	j.arena = kv
	key, v := kv[start:start+len(name):start+len(name)], kv[start+len(name):len(kv):len(kv)]
	if err == nil && int64(len(v)) > bolt.MaxValueSize {
		err = fmt.Errorf("task of %d bytes is over the journal's limit of %d bytes", len(v), bolt.MaxValueSize)
	}
	if err != nil {
		j.refuse(p, fmt.Errorf("encode task for the journal: %w", err))
		if ev.Type == store.Added {
			j.failedCreates[name] = struct{}{}
		}
		return op{}, false
	}
	return op{p: p, kind: opPut, key: key, value: v, ev: ev}, true
}

// arenaKey returns name as a key in the write's arena.
func (j *Journal) arenaKey(name string) []byte {
	start := len(j.arena)
	if cap(j.arena)-start < len(name) {
		j.arena = slices.Grow(j.arena, max(len(name), 64<<10))
	}
	j.arena = append(j.arena, name...)
	return j.arena[start:len(j.arena):len(j.arena)]
}

func checkKey(name string) error {
	switch {
	case name == "":
		return errors.New("empty key")
	case len(name) > bolt.MaxKeySize:
		return fmt.Errorf("task id of %d bytes is over the journal's limit of %d bytes", len(name), bolt.MaxKeySize)
	}
	return nil
}

// refuse fails a change the journal can never take.
func (j *Journal) refuse(p *pending, err error) {
	j.failures.Add(1)
	p.err = err
	name := ""
	if p.ev != nil {
		name = p.ev.Task.Name
	} else if p.rec != nil {
		name = p.rec.id
	}
	j.log.Error(err, "Journal refused a change", "key", truncate(name))
}

// commit writes ops in one transaction.
func (j *Journal) commit(ops []op) error {
	var ds deliveredStats
	undo, changed := j.undoBuf[:0], j.changedBuf[:0] // to undo if the transaction fails
	defer func() {
		clear(changed)
		j.undoBuf, j.changedBuf = undo[:0], changed[:0]
	}()
	start := time.Now()
	err := j.db.Update(func(tx *bolt.Tx) error {
		ds = j.dlv.stats
		tasks := tx.Bucket(bucketTasks)
		tasks.FillPercent = tasksFill
		var log *bolt.Bucket
		for _, o := range ops {
			switch o.kind {
			case opPut:
				if err := tasks.Put(o.key, o.value); err != nil {
					return err
				}
				if _, ok := j.present[o.ev.Task.Name]; !ok {
					j.present[o.ev.Task.Name] = struct{}{}
					changed = append(changed, presence{o.ev.Task.Name, false})
				}
			case opRemove:
				if _, ok := j.present[o.ev.Task.Name]; ok {
					if err := tasks.Delete(o.key); err != nil {
						return err
					}
					delete(j.present, o.ev.Task.Name)
					changed = append(changed, presence{o.ev.Task.Name, true})
				}
			case opDelivered:
				if log == nil {
					log = tx.Bucket(bucketDeliveredLog)
					log.FillPercent = deliveredFill
				}
				if err := j.putDelivered(log, o.rec, &ds, &undo); err != nil {
					return err
				}
			case opProbe:
				if err := j.writeProbe(tx); err != nil {
					return err
				}
			}
		}
		if log != nil {
			return j.pruneDelivered(log, &ds, &undo)
		}
		return nil
	})
	if j.observe != nil {
		j.observe(time.Since(start), err)
	}
	if err != nil {
		j.dlv.undo(undo)
		for _, c := range slices.Backward(changed) {
			if c.was {
				j.present[c.name] = struct{}{}
			} else {
				delete(j.present, c.name)
			}
		}
		return err
	}
	j.depth.Store(int64(len(j.present)))
	j.dlv.stats = ds
	for _, o := range ops {
		if o.kind == opProbe {
			// The probe's room goes back to the free list for the changes to come.
			_ = j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyProbe) })
		}
	}
	return nil
}

// presence is whether a Task was in the journal before a transaction changed it.
type presence struct {
	name string
	was  bool
}

// writeProbe writes a record about as large as the last change that failed, so that a
// recovered journal has room for such changes again.
func (j *Journal) writeProbe(tx *bolt.Tx) error {
	n := min(max(j.probeBytes, 4096), 4<<20)
	return tx.Bucket(bucketMeta).Put(keyProbe, make([]byte, n))
}

// succeeded notes committed ops.
func (j *Journal) succeeded(ops []op) {
	j.unwrittenMu.Lock()
	defer j.unwrittenMu.Unlock()
	for _, o := range ops {
		switch o.kind {
		case opDelivered:
			j.dlv.committed(o.rec)
		case opPut, opRemove:
			if _, ok := j.dirty[o.ev.Task.Name]; !ok {
				delete(j.unwritten, o.ev.Task.Name)
			}
		}
	}
}

// failed notes an op that could not be written: a Task's change is kept for another attempt,
// a creation is not.
func (j *Journal) failed(o op, err error) {
	j.failures.Add(1)
	j.probeBytes = max(j.probeBytes, len(o.value)+len(o.key))
	if o.p != nil {
		o.p.err = err
	}
	switch o.kind {
	case opPut:
		if o.ev.Type == store.Added {
			j.failedCreates[o.ev.Task.Name] = struct{}{}
		} else {
			j.markDirty(o.ev)
		}
	case opRemove:
		j.markDirty(o.ev)
	case opDelivered:
		j.dlv.retry(o.rec)
	}
}

// markDirty keeps a Task's change that failed for another attempt.
func (j *Journal) markDirty(ev store.Event) {
	j.dirty[ev.Task.Name] = ev
	j.unwrittenMu.Lock()
	j.unwritten[ev.Task.Name] = struct{}{}
	j.unwrittenMu.Unlock()
}

// Unwritten reports whether a change of the named Task failed to be written and is not written
// yet: the store holds a status the journal does not, which must not be reported (after a
// crash the journal's older status would come back) until the journal writes it.
func (j *Journal) Unwritten(name string) bool {
	j.unwrittenMu.Lock()
	defer j.unwrittenMu.Unlock()
	_, ok := j.unwritten[name]
	return ok
}

// setHealth records the outcome of a write: unhealthy (with the write's error) until a write
// succeeds again.
func (j *Journal) setHealth(err error) {
	if err == nil {
		if j.health.set(nil) {
			j.probeBytes = 0
			j.log.Info("Journal writes succeed again: tasks are durable again", "journal", j.path)
		}
		return
	}
	if j.health.set(fmt.Errorf("journal write failed: %w", err)) {
		j.log.Error(err, "JOURNAL WRITE FAILED: the agent takes no new tasks until it can write again", "journal", j.path)
	}
}

// Healthy returns nil while the journal writes, else why it does not: the error of the last
// failed write. An unhealthy journal retries on its own.
func (j *Journal) Healthy() error { return j.health.get() }

// HealthChanged returns a channel that is closed when Healthy's answer changes next.
func (j *Journal) HealthChanged() <-chan struct{} { return j.health.changed() }

// Depth returns the number of Tasks in the journal (unreported ones).
func (j *Journal) Depth() int64 { return j.depth.Load() }

// Failures returns the number of changes the journal could not write.
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

// truncate bounds a key for a log line.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}

// health is the journal's health with change notification.
type health struct {
	mu  sync.Mutex
	err error
	ch  chan struct{}
}

func (h *health) init() { h.ch = make(chan struct{}) }

func (h *health) get() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *health) changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ch
}

// set records the health and reports whether it changed between healthy and unhealthy (a new
// reason of an unhealthy journal replaces the old one silently).
func (h *health) set(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	was := h.err != nil
	h.err = err
	if was == (err != nil) {
		return false
	}
	close(h.ch)
	h.ch = make(chan struct{})
	return true
}
