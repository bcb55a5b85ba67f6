package journal

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testfs"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

func sizedTask(name string, payloadBytes int) *agentv1.Task {
	raw := append(append([]byte(`{"content":"`), bytes.Repeat([]byte("x"), payloadBytes)...), `"}`...)
	t := &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       agentv1.TaskSpec{Type: agentv1.TypeEcho, Payload: &runtime.RawExtension{Raw: raw}},
	}
	t.Status.MarkPending(metav1.Now(), 1)
	return t
}

func added(t *agentv1.Task) *pending {
	return &pending{ev: &store.Event{Type: store.Added, Task: t}}
}

// One batch holding a task id bbolt refuses (40 KiB) and good changes: only the bad one fails,
// the others are durable, and the journal stays healthy (the record is at fault, not the disk).
func TestBatchWithABadKeyFailsOnlyIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := open(dir, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	bad := added(sizedTask(strings.Repeat("k", 40<<10), 10))
	batch := []*pending{added(sizedTask("good-1", 10)), bad, added(sizedTask("good-2", 10))}
	j.write(batch, false)
	go j.commitLoop()
	for i, p := range batch {
		if (p == bad) != (p.err != nil) {
			t.Errorf("change %d: error %v", i, p.err)
		}
	}
	if bad.err == nil || !strings.Contains(bad.err.Error(), "40960 bytes") {
		t.Errorf("bad change's error %v, want one naming its size", bad.err)
	}
	if err := j.Healthy(); err != nil {
		t.Errorf("journal unhealthy after refusing a bad record: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(dir, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	mem := memory.New(memory.WithPersister(j2))
	if n, err := j2.Load(mem); err != nil || n != 2 {
		t.Fatalf("reopened journal: %d tasks, %v; want good-1 and good-2", n, err)
	}
	for _, name := range []string{"good-1", "good-2"} {
		if _, err := mem.Get(t.Context(), name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// On a full file system: a batch that does not fit falls back to one transaction per change,
// so the changes that fit are durable and only the one that does not fails, with the disk's
// error; the journal is unhealthy until a write succeeds again, which it finds out on its own
// once there is room, writing then the status changes it could not write before.
func TestFullDiskFailsOnlyWhatDoesNotFitAndRecovers(t *testing.T) {
	t.Parallel()
	dir := testfs.MountTmpfs(t, "8m")
	j, err := open(dir, testr.New(t), WithProbeInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// Room inside the file for small changes: a large record written and removed.
	room := added(sizedTask("room", 256<<10))
	j.write([]*pending{room}, false)
	j.write([]*pending{{ev: &store.Event{Type: store.Deleted, Task: room.ev.Task}}}, false)
	if room.err != nil {
		t.Fatal(room.err)
	}
	filler := testfs.Fill(t, dir)

	big := added(sizedTask("big", 1<<20))
	batch := []*pending{added(sizedTask("small-1", 100)), big, added(sizedTask("small-2", 100))}
	j.write(batch, false)
	go j.commitLoop()
	defer j.Close()
	for i, p := range batch {
		if (p == big) != (p.err != nil) {
			t.Errorf("change %d: error %v", i, p.err)
		}
	}
	if !errors.Is(big.err, syscall.ENOSPC) {
		t.Errorf("big change's error %v, want ENOSPC", big.err)
	}
	health := j.Healthy()
	if health == nil || !strings.Contains(health.Error(), "no space left on device") {
		t.Fatalf("Healthy() = %v, want the disk's error", health)
	}
	changed := j.HealthChanged()

	// While unhealthy, a status change that does not fit fails and is kept for later.
	mem := memory.New(memory.WithPersister(j))
	if _, err := j.Load(mem); err != nil {
		t.Fatal(err)
	}
	_, err = store.MutateStatus(t.Context(), mem, "small-1", func(x *agentv1.Task) bool {
		x.Status.Result = &runtime.RawExtension{Raw: sizedTask("", 1<<20).Spec.Payload.Raw}
		x.Status.MarkSucceeded(metav1.Now(), 1)
		return true
	})
	if !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("update on a full disk = %v, want ErrNotDurable", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("the journal did not recover once there was room")
	}
	if err := j.Healthy(); err != nil {
		t.Fatalf("Healthy() after recovery = %v", err)
	}
	if err := mem.Create(t.Context(), sizedTask("after", 1<<20)); err != nil {
		t.Fatalf("create after recovery: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, err := Open(dir, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	mem2 := memory.New(memory.WithPersister(j2))
	if n, err := j2.Load(mem2); err != nil || n != 3 {
		t.Fatalf("reopened: %d tasks, %v; want small-1, small-2, after", n, err)
	}
	got, err := mem2.Get(t.Context(), "small-1")
	if err != nil || got.Status.Phase != agentv1.TaskSucceeded {
		t.Fatalf("small-1 after recovery: %v, %v; want the status written on recovery", got, err)
	}
	if _, err := mem2.Get(t.Context(), "big"); err == nil {
		t.Error("the creation that failed is in the journal")
	}
}
