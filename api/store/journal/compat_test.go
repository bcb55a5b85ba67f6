package journal_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store/journal"
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
