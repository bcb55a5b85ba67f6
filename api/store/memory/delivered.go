package memory

import (
	"container/list"
	"slices"
	"sync"
	"time"

	"github.com/letsbe/sysadmin-agent/api/store"
)

// Delivered is an in-memory Delivered (cluster mode, tests): it forgets everything when
// the process ends. The zero value is not usable: call NewDelivered.
type Delivered struct {
	lim store.DeliveredLimits

	mu     sync.Mutex
	ids    map[string]*deliveredEntry
	order  *list.List // of *deliveredEntry, oldest first
	bodies *list.List // the entries holding a body, oldest first
	bytes  int64
}

type deliveredEntry struct {
	id    string
	at    time.Time
	body  []byte
	elem  *list.Element // in order
	belem *list.Element // in bodies, nil without body
}

var _ store.Delivered = (*Delivered)(nil)

// NewDelivered returns an empty Delivered bounded by lim (defaults for its zero
// fields).
func NewDelivered(lim store.DeliveredLimits) *Delivered {
	return &Delivered{lim: lim.WithDefaults(), ids: make(map[string]*deliveredEntry), order: list.New(), bodies: list.New()}
}

// RecordDelivered implements Delivered.
func (d *Delivered) RecordDelivered(id string, body []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.lim.Now()
	if old, ok := d.ids[id]; ok {
		d.remove(old)
	}
	if back := d.order.Back(); back != nil && now.Before(back.Value.(*deliveredEntry).at) {
		now = back.Value.(*deliveredEntry).at // keep the order by time
	}
	e := &deliveredEntry{id: id, at: now}
	e.elem = d.order.PushBack(e)
	d.ids[id] = e
	if int64(len(body)) <= d.lim.MaxBytes {
		e.body = slices.Clone(body)
		if e.body == nil {
			e.body = []byte{}
		}
		e.belem = d.bodies.PushBack(e)
		d.bytes += int64(len(body))
	}
	d.prune(now)
}

// LookupDelivered implements Delivered.
func (d *Delivered) LookupDelivered(id string) ([]byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.ids[id]
	if !ok || d.lim.Now().Sub(e.at) > d.lim.Window {
		return nil, false
	}
	return slices.Clone(e.body), true
}

// Len returns the number of ids kept.
func (d *Delivered) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ids)
}

func (d *Delivered) prune(now time.Time) {
	for front := d.order.Front(); front != nil; front = d.order.Front() {
		e := front.Value.(*deliveredEntry)
		if len(d.ids) <= d.lim.MaxEntries && now.Sub(e.at) <= d.lim.Window {
			break
		}
		d.remove(e)
	}
	for front := d.bodies.Front(); front != nil && d.bytes > d.lim.MaxBytes; front = d.bodies.Front() {
		d.dropBody(front.Value.(*deliveredEntry))
	}
}

func (d *Delivered) remove(e *deliveredEntry) {
	d.dropBody(e)
	d.order.Remove(e.elem)
	delete(d.ids, e.id)
}

func (d *Delivered) dropBody(e *deliveredEntry) {
	if e.belem == nil {
		return
	}
	d.bodies.Remove(e.belem)
	d.bytes -= int64(len(e.body))
	e.body, e.belem = nil, nil
}
