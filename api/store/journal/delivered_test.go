package journal

import (
	"maps"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
)

// withHash makes the journal index delivered reports by hash instead of maphash.
func withHash(hash func(string) uint64) Option { return func(j *Journal) { j.dlv.hashf = hash } }

// Every id with the same hash: the index holds one, the others are found by their ids; records
// replaced, forgotten and stripped of their bodies behave as without collisions, also after a
// reopen.
func TestDeliveredHashCollisions(t *testing.T) {
	t.Parallel()
	same := withHash(func(string) uint64 { return 7 })
	storetest.RunDelivered(t, func(t *testing.T, lim store.DeliveredLimits) (store.Delivered, func()) {
		j, err := Open(t.TempDir(), testr.New(t), WithDelivered(lim), same)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = j.Close() })
		return j, j.Flush
	})

	dir := t.TempDir()
	j, err := Open(dir, testr.New(t), same)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "b"} {
		j.RecordDelivered(id, []byte("body of "+id))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = Open(dir, testr.New(t), same)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for _, id := range []string{"a", "b", "c"} {
		if body, found := j.LookupDelivered(id); !found || string(body) != "body of "+id {
			t.Errorf("after reopen, LookupDelivered(%s) = %q, %v", id, body, found)
		}
	}
	if _, found := j.LookupDelivered("d"); found {
		t.Error("an id never recorded, of the same hash, was found")
	}
	if j.dlv.stats.count != 3 {
		t.Errorf("count %d after reopen, want 3 (b replaced)", j.dlv.stats.count)
	}
}

// A transaction that fails leaves the index as it was: the earlier record of a replaced id
// is still found, a new id is not; once written, the new records are found.
func TestDeliveredIndexUndoneWhenCommitFails(t *testing.T) {
	t.Parallel()
	j, err := open(t.TempDir(), testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j.db.Close()
	at := time.Now()
	rec := func(id, body string) op {
		at = at.Add(time.Millisecond)
		r, _ := newDeliveredRecord(id, at, []byte(body), j.dlv.lim.MaxBytes)
		return op{kind: opDelivered, key: []byte(id), rec: r}
	}
	if err := j.commit([]op{rec("t-1", "first")}); err != nil {
		t.Fatal(err)
	}
	index := func() map[uint64]int64 {
		j.dlv.mu.Lock()
		defer j.dlv.mu.Unlock()
		return maps.Clone(j.dlv.index)
	}
	before := index()
	failing := op{kind: opPut, key: nil, value: []byte("x")} // bbolt refuses an empty key
	err = j.commit([]op{rec("t-1", "second"), rec("t-2", "new"), failing})
	if err == nil {
		t.Fatal("a transaction with an empty key committed")
	}
	if diff := cmp.Diff(before, index()); diff != "" {
		t.Errorf("index after a failed transaction (-want +got):\n%s", diff)
	}
	if body, found := j.LookupDelivered("t-1"); !found || string(body) != "first" {
		t.Errorf("t-1 after the failed replacement: %q, %v; want the first record", body, found)
	}
	if _, found := j.LookupDelivered("t-2"); found {
		t.Error("t-2 found though its record failed")
	}
	if err := j.commit([]op{rec("t-1", "second"), rec("t-2", "new")}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"t-1": "second", "t-2": "new"} {
		if body, found := j.LookupDelivered(id); !found || string(body) != want {
			t.Errorf("%s: %q, %v; want %q", id, body, found, want)
		}
	}
}
