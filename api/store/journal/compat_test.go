package journal_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/journal"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// TestJournalLoadsEntriesOfEarlierVersions: an agent before spec.taskID journaled its Tasks
// named by their task ids. They load with that id as spec.taskID, under the name TaskName
// derives from it, and their later changes are kept under that name.
func TestJournalLoadsEntriesOfEarlierVersions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, _, _ := open(t, dir)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// What the previous version wrote: key and name are the id, no spec.taskID.
	db, err := bolt.Open(filepath.Join(dir, journal.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"t-1", "Task_7"} {
		old := task(id)
		old.Status.MarkRunning(metav1.Now(), 1)
		v, err := json.Marshal(old)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("tasks")).Put([]byte(id), v) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	j, mem, n := open(t, dir)
	if n != 2 {
		t.Fatalf("loaded %d tasks, want 2", n)
	}
	got := map[string]string{}
	list, _ := mem.List(t.Context())
	for _, it := range list.Items {
		got[it.Name] = it.Spec.TaskID
		if it.Status.Phase != agentv1.TaskRunning {
			t.Errorf("%s: phase %q, want the journaled Running", it.Name, it.Status.Phase)
		}
	}
	want := map[string]string{"t-1": "t-1", agentv1.TaskName("Task_7"): "Task_7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("names and task ids (-want +got):\n%s", diff)
	}
	mutate(t, mem, agentv1.TaskName("Task_7"), func(x *agentv1.Task) { x.Status.Error = "changed" })
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j, mem, n = open(t, dir)
	defer j.Close()
	if n != 2 {
		t.Fatalf("reopened: loaded %d tasks, want 2 (the old key moved, not copied)", n)
	}
	if task, err := mem.Get(t.Context(), agentv1.TaskName("Task_7")); err != nil || task.Status.Error != "changed" || task.TaskID() != "Task_7" {
		t.Fatalf("renamed task after reopen: %v %+v", err, task)
	}
}

// TestJournalLoadsDeliveredReportsOfEarlierVersions: a journal as the version before the
// delivered log wrote it (Tasks as json.Marshal wrote them, delivered reports in a bucket by id
// and one by time) loads whole: its Tasks, and its delivered reports, moved into the log once,
// with and without their bodies, still bounded (the oldest forgotten first) and kept across
// reopens.
func TestJournalLoadsDeliveredReportsOfEarlierVersions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, _, _ := open(t, dir)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	clock := storetest.NewClock()
	base := clock.Now()
	db, err := bolt.Open(filepath.Join(dir, journal.FileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The earlier layout, written as it wrote it.
	type oldRecord struct {
		id   string
		at   time.Time
		body []byte // nil: dropped beyond the byte budget
	}
	old := []oldRecord{
		{"t-old", base.Add(-3 * time.Hour), []byte(`{"status":"FAILED"}`)},
		{"t-stripped", base.Add(-2 * time.Hour), nil},
		{"t-kept", base.Add(-time.Hour), []byte(`{"status":"COMPLETED"}`)},
		{"t-empty", base.Add(-time.Minute), []byte{}},
	}
	err = db.Update(func(tx *bolt.Tx) error {
		byID, err := tx.CreateBucketIfNotExists([]byte("delivered"))
		if err != nil {
			return err
		}
		byTime, err := tx.CreateBucketIfNotExists([]byte("delivered-by-time"))
		if err != nil {
			return err
		}
		for _, r := range old {
			v := binary.BigEndian.AppendUint64(nil, uint64(r.at.UnixNano()))
			flags := byte(1)
			if r.body == nil {
				flags = 0
			}
			if err := byID.Put([]byte(r.id), append(append(v, flags), r.body...)); err != nil {
				return err
			}
			k := append(binary.BigEndian.AppendUint64(nil, uint64(r.at.UnixNano())), r.id...)
			if err := byTime.Put(k, binary.BigEndian.AppendUint64(nil, uint64(len(r.body)))); err != nil {
				return err
			}
		}
		running := task("t-running")
		running.Status.MarkRunning(metav1.Now(), 1)
		v, err := json.Marshal(running)
		if err != nil {
			return err
		}
		return tx.Bucket([]byte("tasks")).Put([]byte(running.Name), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	reopen := func(lim store.DeliveredLimits) (*journal.Journal, *memory.Store) {
		t.Helper()
		j, err := journal.Open(dir, testr.New(t), journal.WithDelivered(lim))
		if err != nil {
			t.Fatal(err)
		}
		mem := memory.New(memory.WithPersister(j))
		if n, err := j.Load(mem); err != nil || n != 1 {
			t.Fatalf("loaded %d tasks, %v; want the running one", n, err)
		}
		return j, mem
	}
	lookup := func(j *journal.Journal) map[string]string {
		got := map[string]string{}
		for _, r := range old {
			if body, found := j.LookupDelivered(r.id); found {
				got[r.id] = fmt.Sprintf("%q", body)
				if body == nil {
					got[r.id] = "no body"
				}
			}
		}
		return got
	}
	lim := store.DeliveredLimits{Now: clock.Now}
	j, mem := reopen(lim)
	if got, err := mem.Get(t.Context(), "t-running"); err != nil || got.Status.Phase != agentv1.TaskRunning {
		t.Fatalf("the Task of the earlier version: %v, %v", got, err)
	}
	want := map[string]string{"t-old": `"{\"status\":\"FAILED\"}"`, "t-stripped": "no body", "t-kept": `"{\"status\":\"COMPLETED\"}"`, "t-empty": `""`}
	if diff := cmp.Diff(want, lookup(j)); diff != "" {
		t.Errorf("delivered reports of the earlier version (-want +got):\n%s", diff)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	// Moved once: the earlier buckets are gone; the reports are still bounded, oldest first.
	lim.MaxEntries = 3
	j, _ = reopen(lim)
	j.RecordDelivered("t-new", []byte("new"))
	j.Flush()
	delete(want, "t-old")
	delete(want, "t-stripped")
	if diff := cmp.Diff(want, lookup(j)); diff != "" {
		t.Errorf("delivered reports bounded to 3 (-want +got):\n%s", diff)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = bolt.Open(filepath.Join(dir, journal.FileName), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		for _, name := range []string{"delivered", "delivered-by-time"} {
			if tx.Bucket([]byte(name)) != nil {
				t.Errorf("bucket %s of the earlier layout still there", name)
			}
		}
		return nil
	})
}
