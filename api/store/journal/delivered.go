package journal

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/letsbe/sysadmin-agent/api/store"
)

// The delivered reports live in one bucket, in the order they were recorded: the key is the
// record time (8 bytes, nanoseconds, big-endian) and the id, the value a flag byte and the report
// (flags only once its body is dropped). Records are only ever appended there and pruned from
// its start, so a commit writes its last page or two. The journal finds an id's record by its
// time, which it keeps in memory by a hash of the id (a small map of whole ids holds those
// whose hash another id held when they were recorded), so asking for an id that was never
// delivered, as intake does for every task, reads nothing.
//
// Journals before this layout kept two buckets, by id (time, flags, body) and by time (time
// and id, the body's size): Open moves them into the log once.
var (
	bucketDeliveredLog    = []byte("delivered-log")
	bucketDeliveredByID   = []byte("delivered")         // before the log
	bucketDeliveredByTime = []byte("delivered-by-time") // before the log
)

const flagBody = 1

// deliveredFill is the log's fill percent: it is appended to, never split in its middle.
const deliveredFill = 1.0

// WithDelivered bounds the delivered reports the journal keeps (store.DeliveredLimits'
// defaults for zero fields).
func WithDelivered(lim store.DeliveredLimits) Option {
	return func(j *Journal) { j.dlv.lim = lim.WithDefaults() }
}

// deliveredRecord is one RecordDelivered call.
type deliveredRecord struct {
	id    string
	at    time.Time
	body  []byte
	value []byte // its value in the log: flags and the body kept
}

// newDeliveredRecord returns the record of body, and a pending change of it nobody waits
// for, in one allocation and one copy of body.
func newDeliveredRecord(id string, at time.Time, body []byte, maxBytes int64) (*deliveredRecord, *pending) {
	pr := &struct {
		p pending
		r deliveredRecord
	}{r: deliveredRecord{id: id, at: at}}
	pr.p.rec, pr.p.lazy = &pr.r, true
	if int64(len(body)) > maxBytes {
		// Too large to keep: only the id is written (until then the body is looked up).
		pr.r.body, pr.r.value = slices.Clone(body), []byte{0}
	} else {
		pr.r.value = append(append(make([]byte, 0, 1+len(body)), flagBody), body...)
		pr.r.body = pr.r.value[1:]
	}
	return &pr.r, &pr.p
}

// deliveredStats are the kept ids and body bytes, and the time key below which no body is
// kept. Owned by the commit loop.
type deliveredStats struct {
	count int
	bytes int64
	floor []byte
}

type delivered struct {
	lim   store.DeliveredLimits
	stats deliveredStats
	seed  maphash.Seed
	hashf func(string) uint64 // tests only: instead of maphash

	mu      sync.Mutex
	last    time.Time                   // the latest record time: records are ordered by time
	queued  map[string]*deliveredRecord // recorded, not committed yet (failed ones too)
	pending []*deliveredRecord          // failed, to be written again
	// The record time of each id in the log, by the hash of the id; collide holds the ids
	// whose hash was another id's when they were recorded. Changed by the commit loop in its
	// transaction (and undone if it fails), read by LookupDelivered: an entry there before its
	// record is committed is answered from queued, one removed a little early was being
	// forgotten anyway.
	index   map[uint64]int64
	collide map[string]int64
}

func (d *delivered) init() {
	d.lim = store.DeliveredLimits{}.WithDefaults()
	d.queued = make(map[string]*deliveredRecord)
	d.seed = maphash.MakeSeed()
	d.index = make(map[uint64]int64)
	d.collide = make(map[string]int64)
}

// indexChange is the state of one index entry before a change, to undo it.
type indexChange struct {
	collide bool
	hash    uint64
	id      string
	at      int64
	had     bool
}

// find returns the record time of id in the index, and whether it is a collide entry.
// Caller holds mu.
func (d *delivered) find(id string, h uint64) (at int64, ok, collided bool) {
	if at, ok := d.collide[id]; ok {
		return at, true, true
	}
	at, ok = d.index[h]
	return at, ok, false
}

// set sets (ok) or removes an index entry, noting its earlier state in undo. Caller holds mu.
func (d *delivered) set(undo *[]indexChange, collided bool, h uint64, id string, at int64, ok bool) {
	c := indexChange{collide: collided, hash: h, id: id}
	if collided {
		c.at, c.had = d.collide[id]
		if ok {
			d.collide[id] = at
		} else {
			delete(d.collide, id)
		}
	} else {
		c.at, c.had = d.index[h]
		if ok {
			d.index[h] = at
		} else {
			delete(d.index, h)
		}
	}
	*undo = append(*undo, c)
}

// undo reverts index changes of a transaction that failed.
func (d *delivered) undo(changes []indexChange) {
	if len(changes) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range slices.Backward(changes) {
		switch {
		case c.collide && c.had:
			d.collide[c.id] = c.at
		case c.collide:
			delete(d.collide, c.id)
		case c.had:
			d.index[c.hash] = c.at
		default:
			delete(d.index, c.hash)
		}
	}
}

// RecordDelivered implements store.Delivered. The record is queued behind every change
// persisted before it (the Task's removal once its final report was accepted comes later), so it
// is committed no later than that removal. It is visible to LookupDelivered at once.
func (j *Journal) RecordDelivered(id string, body []byte) {
	d := &j.dlv
	d.mu.Lock()
	at := d.lim.Now()
	if at.Before(d.last) {
		at = d.last
	}
	d.last = at
	rec, p := newDeliveredRecord(id, at, body, d.lim.MaxBytes)
	d.queued[id] = rec
	d.mu.Unlock()
	// Nobody waits for it: it is committed with the next change that is waited for (or soon).
	if !j.enqueue(p) {
		j.log.Info("Journal closed: a delivered report is not recorded", "task", truncate(id))
	}
}

// LookupDelivered implements store.Delivered. An id the index does not hold reads nothing.
func (j *Journal) LookupDelivered(id string) ([]byte, bool) {
	d := &j.dlv
	now := d.lim.Now()
	h := d.hash(id)
	for {
		d.mu.Lock()
		rec, queued := d.queued[id]
		at, found, _ := d.find(id, h)
		d.mu.Unlock()
		if queued {
			if now.Sub(rec.at) > d.lim.Window {
				return nil, false
			}
			return slices.Clone(rec.body), true
		}
		if !found || now.Sub(time.Unix(0, at)) > d.lim.Window {
			return nil, false
		}
		var body []byte
		var read bool
		_ = j.db.View(func(tx *bolt.Tx) error {
			v := tx.Bucket(bucketDeliveredLog).Get(timeKeyNanos(at, id))
			if len(v) == 0 {
				return nil // another id's hash, or changed meanwhile
			}
			read = true
			if v[0]&flagBody != 0 {
				body = append([]byte{}, v[1:]...)
			}
			return nil
		})
		if read {
			return body, true
		}
		// Recorded again or forgotten since the index was read: ask again.
		d.mu.Lock()
		_, queued = d.queued[id]
		again, foundAgain, _ := d.find(id, h)
		d.mu.Unlock()
		if !queued && (!foundAgain || again == at) {
			return nil, false
		}
	}
}

func (d *delivered) hash(id string) uint64 {
	if d.hashf != nil {
		return d.hashf(id)
	}
	return maphash.String(d.seed, id)
}

// Flush waits until every change and record queued before it is committed, or failed.
func (j *Journal) Flush() {
	p := &pending{waited: true}
	p.done.Add(1)
	if j.enqueue(p) {
		p.done.Wait()
	}
}

func (d *delivered) committed(rec *deliveredRecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.queued[rec.id] == rec {
		delete(d.queued, rec.id)
	}
}

func (d *delivered) retry(rec *deliveredRecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.queued[rec.id] == rec { // else a newer record replaced it
		d.pending = append(d.pending, rec)
	}
}

func (d *delivered) takeRetries() []*deliveredRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	recs := d.pending
	d.pending = nil
	return recs
}

// loadDelivered counts what the journal keeps and indexes it.
func (j *Journal) loadDelivered() error {
	d := &j.dlv
	return j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeliveredLog).ForEach(func(k, v []byte) error {
			if len(k) < 8 || len(v) == 0 {
				return nil
			}
			d.stats.count++
			if v[0]&flagBody != 0 {
				d.stats.bytes += int64(len(v) - 1)
			}
			at := int64(binary.BigEndian.Uint64(k))
			if t := time.Unix(0, at); t.After(d.last) {
				d.last = t
			}
			id, h := string(k[8:]), d.hash(string(k[8:]))
			if _, taken := d.index[h]; taken {
				d.collide[id] = at // each id has one record: another id holds the hash
			} else {
				d.index[h] = at
			}
			return nil
		})
	})
}

// upgradeDelivered moves the delivered reports of a journal before the log (a bucket by id
// and one by time) into the log, in one transaction.
func upgradeDelivered(db *bolt.DB) error {
	old := false
	_ = db.View(func(tx *bolt.Tx) error {
		old = tx.Bucket(bucketDeliveredByTime) != nil || tx.Bucket(bucketDeliveredByID) != nil
		return nil
	})
	if !old {
		return nil
	}
	return db.Update(func(tx *bolt.Tx) error {
		log := tx.Bucket(bucketDeliveredLog)
		log.FillPercent = deliveredFill
		byID, byTime := tx.Bucket(bucketDeliveredByID), tx.Bucket(bucketDeliveredByTime)
		if byID != nil && byTime != nil {
			err := byTime.ForEach(func(k, _ []byte) error {
				if len(k) <= 8 {
					return nil
				}
				// By id: the record time (8 bytes), the flags, the body.
				if v := byID.Get(k[8:]); len(v) >= 9 && bytes.Equal(v[:8], k[:8]) {
					return log.Put(k, v[8:])
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, name := range [][]byte{bucketDeliveredByID, bucketDeliveredByTime} {
			if tx.Bucket(name) != nil {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func timeKey(at time.Time, id string) []byte { return timeKeyNanos(at.UnixNano(), id) }

func timeKeyNanos(at int64, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(at))
	return append(k, id...)
}

// putDelivered appends one record to the log, replacing an earlier one of the same id.
func (j *Journal) putDelivered(log *bolt.Bucket, rec *deliveredRecord, ds *deliveredStats, undo *[]indexChange) error {
	d := &j.dlv
	h := d.hash(rec.id)
	d.mu.Lock()
	defer d.mu.Unlock()
	at, found, collided := d.find(rec.id, h)
	if found {
		k := timeKeyNanos(at, rec.id)
		switch v := log.Get(k); {
		case len(v) > 0:
			// Its earlier record: replaced.
			ds.count--
			if v[0]&flagBody != 0 {
				ds.bytes -= int64(len(v) - 1)
			}
			if err := log.Delete(k); err != nil {
				return err
			}
		case !collided:
			collided = true // the hash is another id's
		}
	}
	if err := log.Put(timeKey(rec.at, rec.id), rec.value); err != nil {
		return err
	}
	d.set(undo, collided, h, rec.id, rec.at.UnixNano(), true)
	ds.count++
	ds.bytes += int64(len(rec.value) - 1)
	return nil
}

// pruneDelivered forgets the oldest ids beyond the window or the count, then drops the oldest
// bodies beyond the byte budget (their ids stay).
func (j *Journal) pruneDelivered(log *bolt.Bucket, ds *deliveredStats, undo *[]indexChange) error {
	d := &j.dlv
	lim := d.lim
	cutoff := lim.Now().Add(-lim.Window).UnixNano()
	var drop [][]byte
	c := log.Cursor()
	for k, v := c.First(); len(k) >= 8; k, v = c.Next() {
		if ds.count <= lim.MaxEntries && int64(binary.BigEndian.Uint64(k)) >= cutoff {
			break
		}
		drop = append(drop, slices.Clone(k))
		ds.count--
		if len(v) > 0 && v[0]&flagBody != 0 {
			ds.bytes -= int64(len(v) - 1)
		}
	}
	if len(drop) > 0 {
		d.mu.Lock()
		for _, k := range drop {
			id, at := string(k[8:]), int64(binary.BigEndian.Uint64(k))
			h := d.hash(id)
			if c, ok := d.collide[id]; ok && c == at {
				d.set(undo, true, h, id, 0, false)
			} else if i, ok := d.index[h]; ok && i == at {
				d.set(undo, false, h, id, 0, false)
			}
		}
		d.mu.Unlock()
		for _, k := range drop {
			if err := log.Delete(k); err != nil {
				return err
			}
		}
	}
	if ds.bytes <= lim.MaxBytes {
		return nil
	}
	var strip [][]byte
	c = log.Cursor()
	k, v := c.First()
	if ds.floor != nil {
		k, v = c.Seek(ds.floor)
	}
	for ; k != nil && ds.bytes > lim.MaxBytes; k, v = c.Next() {
		if len(v) > 1 && v[0]&flagBody != 0 {
			strip = append(strip, slices.Clone(k))
			ds.bytes -= int64(len(v) - 1)
		}
	}
	for _, k := range strip {
		if err := log.Put(k, []byte{0}); err != nil {
			return err
		}
	}
	if n := len(strip); n > 0 && (ds.floor == nil || bytes.Compare(strip[n-1], ds.floor) > 0) {
		ds.floor = strip[n-1]
	}
	return nil
}
