package journal

import (
	"bytes"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/letsbe/sysadmin-agent/api/store"
)

// The delivered reports live in two buckets: by id (the record time, a flag and the report)
// and by time (time and id, with the size of the body kept), for pruning oldest first.
var (
	bucketDelivered     = []byte("delivered")
	bucketDeliveredTime = []byte("delivered-by-time")
)

const flagBody = 1

// WithDelivered bounds the delivered reports the journal keeps (store.DeliveredLimits'
// defaults for zero fields).
func WithDelivered(lim store.DeliveredLimits) Option {
	return func(j *Journal) { j.dlv.lim = lim.WithDefaults() }
}

// deliveredRecord is one RecordDelivered call.
type deliveredRecord struct {
	id   string
	at   time.Time
	body []byte
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

	mu      sync.Mutex
	last    time.Time                   // the latest record time: records are ordered by time
	queued  map[string]*deliveredRecord // recorded, not committed yet (failed ones too)
	pending []*deliveredRecord          // failed, to be written again
}

func (d *delivered) init() {
	d.lim = store.DeliveredLimits{}.WithDefaults()
	d.queued = make(map[string]*deliveredRecord)
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
	rec := &deliveredRecord{id: id, at: at, body: slices.Clone(body)}
	d.queued[id] = rec
	d.mu.Unlock()
	// Nobody waits for it: it is committed with the next change that is waited for (or soon).
	if !j.enqueue(&pending{rec: rec, done: make(chan struct{}), lazy: true}) {
		j.log.Info("Journal closed: a delivered report is not recorded", "task", truncate(id))
	}
}

// LookupDelivered implements store.Delivered.
func (j *Journal) LookupDelivered(id string) ([]byte, bool) {
	d := &j.dlv
	now := d.lim.Now()
	d.mu.Lock()
	rec, ok := d.queued[id]
	d.mu.Unlock()
	if ok {
		if now.Sub(rec.at) > d.lim.Window {
			return nil, false
		}
		return slices.Clone(rec.body), true
	}
	var body []byte
	found := false
	_ = j.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketDelivered).Get([]byte(id))
		if len(v) < 9 {
			return nil
		}
		at := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		if now.Sub(at) > d.lim.Window {
			return nil
		}
		found = true
		if v[8]&flagBody != 0 {
			body = slices.Clone(v[9:])
			if body == nil {
				body = []byte{}
			}
		}
		return nil
	})
	return body, found
}

// Flush waits until every change and record queued before it is committed, or failed.
func (j *Journal) Flush() {
	p := &pending{done: make(chan struct{})}
	if j.enqueue(p) {
		<-p.done
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

// loadDelivered counts what the journal keeps.
func (j *Journal) loadDelivered() error {
	return j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeliveredTime).ForEach(func(k, v []byte) error {
			if len(k) < 8 || len(v) != 8 {
				return nil
			}
			j.dlv.stats.count++
			j.dlv.stats.bytes += int64(binary.BigEndian.Uint64(v))
			if at := time.Unix(0, int64(binary.BigEndian.Uint64(k))); at.After(j.dlv.last) {
				j.dlv.last = at
			}
			return nil
		})
	})
}

func timeKey(at time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(at.UnixNano()))
	return append(k, id...)
}

func u64(n int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// putDelivered writes one record, replacing an earlier one of the same id.
func (j *Journal) putDelivered(tx *bolt.Tx, rec *deliveredRecord, ds *deliveredStats) error {
	db, tb := tx.Bucket(bucketDelivered), tx.Bucket(bucketDeliveredTime)
	key := []byte(rec.id)
	if old := db.Get(key); len(old) >= 9 {
		tk := timeKey(time.Unix(0, int64(binary.BigEndian.Uint64(old))), rec.id)
		if v := tb.Get(tk); len(v) == 8 {
			ds.bytes -= int64(binary.BigEndian.Uint64(v))
			ds.count--
		}
		if err := tb.Delete(tk); err != nil {
			return err
		}
	}
	body := rec.body
	flags := byte(flagBody)
	if int64(len(body)) > j.dlv.lim.MaxBytes {
		body, flags = nil, 0
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 9+len(body)), uint64(rec.at.UnixNano()))
	v = append(append(v, flags), body...)
	if err := db.Put(key, v); err != nil {
		return err
	}
	if err := tb.Put(timeKey(rec.at, rec.id), u64(len(body))); err != nil {
		return err
	}
	ds.count++
	ds.bytes += int64(len(body))
	return nil
}

// pruneDelivered forgets the oldest ids beyond the window or the count, then drops the oldest
// bodies beyond the byte budget (their ids stay).
func (j *Journal) pruneDelivered(tx *bolt.Tx, ds *deliveredStats) error {
	lim := j.dlv.lim
	db, tb := tx.Bucket(bucketDelivered), tx.Bucket(bucketDeliveredTime)
	cutoff := lim.Now().Add(-lim.Window).UnixNano()
	var drop [][]byte
	c := tb.Cursor()
	for k, v := c.First(); len(k) >= 8; k, v = c.Next() {
		if ds.count <= lim.MaxEntries && int64(binary.BigEndian.Uint64(k)) >= cutoff {
			break
		}
		drop = append(drop, slices.Clone(k))
		ds.count--
		if len(v) == 8 {
			ds.bytes -= int64(binary.BigEndian.Uint64(v))
		}
	}
	for _, k := range drop {
		if err := tb.Delete(k); err != nil {
			return err
		}
		if err := db.Delete(k[8:]); err != nil {
			return err
		}
	}
	if ds.bytes <= lim.MaxBytes {
		return nil
	}
	var strip [][]byte
	c = tb.Cursor()
	k, v := c.First()
	if ds.floor != nil {
		k, v = c.Seek(ds.floor)
	}
	for ; k != nil && ds.bytes > lim.MaxBytes; k, v = c.Next() {
		if n := int64(binary.BigEndian.Uint64(v)); len(v) == 8 && n > 0 {
			strip = append(strip, slices.Clone(k))
			ds.bytes -= n
		}
	}
	for _, k := range strip {
		if err := tb.Put(k, u64(0)); err != nil {
			return err
		}
		old := db.Get(k[8:])
		if len(old) < 9 {
			continue
		}
		v := append(slices.Clone(old[:8]), 0)
		if err := db.Put(k[8:], v); err != nil {
			return err
		}
	}
	if n := len(strip); n > 0 && (ds.floor == nil || bytes.Compare(strip[n-1], ds.floor) > 0) {
		ds.floor = strip[n-1]
	}
	return nil
}
