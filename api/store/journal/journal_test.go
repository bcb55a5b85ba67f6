package journal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/journal"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

func open(t *testing.T, dir string) (*journal.Journal, *memory.Store, int) {
	t.Helper()
	j, err := journal.Open(dir, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	mem := memory.New(memory.WithPersister(j))
	n, err := j.Load(mem)
	if err != nil {
		t.Fatal(err)
	}
	return j, mem, n
}

func task(name string) *agentv1.Task {
	t := &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       agentv1.TaskSpec{Type: "ECHO", Payload: &runtime.RawExtension{Raw: []byte(`{"a":1}`)}},
	}
	t.Status.MarkPending(metav1.Now(), 1)
	return t
}

func mutate(t *testing.T, s store.Store, name string, f func(*agentv1.Task)) {
	t.Helper()
	if _, err := store.MutateStatus(context.Background(), s, name, func(x *agentv1.Task) bool { f(x); return true }); err != nil {
		t.Fatal(err)
	}
}

func TestJournalSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, mem, n := open(t, dir)
	if n != 0 {
		t.Fatalf("fresh journal loaded %d tasks", n)
	}
	ctx := t.Context()
	for _, name := range []string{"pending", "running", "final", "reported", "deleted"} {
		if err := mem.Create(ctx, task(name)); err != nil {
			t.Fatal(err)
		}
	}
	now := metav1.Now()
	mutate(t, mem, "running", func(x *agentv1.Task) { x.Status.MarkRunning(now, 1) })
	mutate(t, mem, "final", func(x *agentv1.Task) {
		x.Status.MarkRunning(now, 1)
		x.Status.Result = &runtime.RawExtension{Raw: []byte(`{"ok":true}`)}
		x.Status.MarkSucceeded(now, 1)
	})
	mutate(t, mem, "reported", func(x *agentv1.Task) { x.Status.MarkSucceeded(now, 1) })
	mutate(t, mem, "reported", func(x *agentv1.Task) { x.Status.MarkReported(now, false, "") })
	if err := mem.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	// Removals are not waited for; a later durable write is committed after them.
	mutate(t, mem, "pending", func(x *agentv1.Task) { x.Status.AddEvent(now, "Test", "sync point") })
	if got := j.Depth(); got != 3 {
		t.Errorf("depth = %d, want 3", got)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j2, mem2, n := open(t, dir)
	defer j2.Close()
	if n != 3 {
		t.Fatalf("reloaded %d tasks, want 3 (pending, running, final)", n)
	}
	want := map[string]agentv1.TaskPhase{"pending": agentv1.TaskPending, "running": agentv1.TaskRunning, "final": agentv1.TaskSucceeded}
	for name, phase := range want {
		got, err := mem2.Get(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Status.Phase != phase {
			t.Errorf("%s: phase %s, want %s", name, got.Status.Phase, phase)
		}
	}
	final, _ := mem2.Get(ctx, "final")
	if string(final.Status.Result.Raw) != `{"ok":true}` || string(final.Spec.Payload.Raw) != `{"a":1}` {
		t.Errorf("final task lost data: %s %s", final.Status.Result.Raw, final.Spec.Payload.Raw)
	}
	// Writes after a reload go on working.
	mutate(t, mem2, "pending", func(x *agentv1.Task) { x.Status.MarkRunning(now, 1) })
}

func TestJournalWriteIsDurableBeforeAnnounced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, mem, _ := open(t, dir)
	defer j.Close()
	// When a subscriber hears of a change, a second reader of the file must already see it.
	var mu sync.Mutex
	var checked int
	mem.Subscribe(func(ev store.Event) {
		mu.Lock()
		checked++
		mu.Unlock()
	})
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := mem.Create(context.Background(), task(fmt.Sprintf("t-%03d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := j.Depth(); got != n {
		t.Fatalf("depth = %d, want %d", got, n)
	}
	if checked != n {
		t.Fatalf("%d notifications, want %d", checked, n)
	}
}

func TestJournalCorruptIsMovedAside(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, journal.FileName), []byte(strings.Repeat("garbage!", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	j, mem, n := open(t, dir)
	defer j.Close()
	if n != 0 {
		t.Fatalf("loaded %d tasks from garbage", n)
	}
	if err := mem.Create(t.Context(), task("t")); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, journal.FileName+".corrupt-*"))
	if len(matches) != 1 {
		t.Fatalf("corrupt journal not moved aside: %v", matches)
	}
}

func TestJournalLockedByAnotherAgent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, _, _ := open(t, dir)
	defer j.Close()
	_, err := journal.Open(dir, testr.New(t))
	if err == nil || !strings.Contains(err.Error(), "AGENT_STATE_DIR") {
		t.Fatalf("second open: %v, want a lock error naming AGENT_STATE_DIR", err)
	}
}

func BenchmarkJournalCreate(b *testing.B) {
	j, err := journal.Open(b.TempDir(), logr.Discard())
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	mem := memory.New(memory.WithPersister(j))
	b.ReportAllocs()
	var i int
	var mu sync.Mutex
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i++
			name := fmt.Sprintf("t-%d", i)
			mu.Unlock()
			if err := mem.Create(context.Background(), task(name)); err != nil {
				b.Error(err)
			}
		}
	})
}

// Through the store, with writers at once: a task id bbolt cannot take fails alone (its writer
// gets ErrNotDurable), every other creation is durable and the reopened journal shows it.
func TestJournalBadTaskNeverFailsAnother(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, mem, _ := open(t, dir)
	const n = 100
	bad := strings.Repeat("x", 40<<10)
	var wg sync.WaitGroup
	errs := make([]error, n+1)
	for i := range n + 1 {
		wg.Go(func() {
			name := fmt.Sprintf("t-%03d", i)
			if i == n {
				name = bad
			}
			errs[i] = mem.Create(context.Background(), task(name))
		})
	}
	wg.Wait()
	for i, err := range errs[:n] {
		if err != nil {
			t.Errorf("t-%03d: %v", i, err)
		}
	}
	if !errors.Is(errs[n], store.ErrNotDurable) {
		t.Errorf("40 KiB id: %v, want ErrNotDurable", errs[n])
	}
	if err := j.Healthy(); err != nil {
		t.Errorf("a bad record made the journal unhealthy: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, mem2, got := open(t, dir)
	defer j2.Close()
	if got != n {
		t.Fatalf("reopened journal holds %d tasks, want %d", got, n)
	}
	if _, err := mem2.Get(t.Context(), bad); err == nil {
		t.Error("the refused task is in the journal")
	}
}

func TestJournalDelivered(t *testing.T) {
	t.Parallel()
	storetest.RunDelivered(t, func(t *testing.T, lim store.DeliveredLimits) (store.Delivered, func()) {
		j, err := journal.Open(t.TempDir(), testr.New(t), journal.WithDelivered(lim))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = j.Close() })
		return j, j.Flush
	})
}

// Delivered reports survive a restart, and a report recorded before its Task's removal is
// never lost while the removal is kept.
func TestJournalDeliveredSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, mem, _ := open(t, dir)
	if err := mem.Create(t.Context(), task("t-1")); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	mutate(t, mem, "t-1", func(x *agentv1.Task) { x.Status.MarkSucceeded(now, 1) })
	j.RecordDelivered("t-1", []byte(`{"status":"COMPLETED"}`))
	mutate(t, mem, "t-1", func(x *agentv1.Task) { x.Status.MarkReported(now, false, "") })
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, _, n := open(t, dir)
	defer j2.Close()
	if n != 0 {
		t.Errorf("reopened journal holds %d tasks, want the reported one removed", n)
	}
	if body, found := j2.LookupDelivered("t-1"); !found || string(body) != `{"status":"COMPLETED"}` {
		t.Errorf("LookupDelivered after reopen = %q, %v", body, found)
	}
}

func TestJournalWriteObserver(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var writes []error
	j, err := journal.Open(t.TempDir(), testr.New(t), journal.WithWriteObserver(func(elapsed time.Duration, err error) {
		if elapsed <= 0 {
			t.Errorf("write observed with elapsed %s, want > 0", elapsed)
		}
		mu.Lock()
		writes = append(writes, err)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = j.Close() }()
	mem := memory.New(memory.WithPersister(j))
	if _, err := j.Load(mem); err != nil {
		t.Fatal(err)
	}
	// Create returns once the change is durable: its transaction has been observed.
	if err := mem.Create(t.Context(), task("t-observed")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writes) == 0 {
		t.Fatal("no write observed after a durable Create")
	}
	for i, err := range writes {
		if err != nil {
			t.Errorf("write %d observed with error %v", i, err)
		}
	}
}

// TestJournalDeferredChanges: what nobody waits for (a report's delivery under
// store.Deferrable, the removal of a reported Task, a delivered report) is written all the
// same: with the next change that is waited for, on its own soon after, and at Close.
func TestJournalDeferredChanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, mem, _ := open(t, dir)
	ctx := t.Context()
	now := metav1.Now()
	for _, name := range []string{"acked", "folded", "reported"} {
		if err := mem.Create(ctx, task(name)); err != nil {
			t.Fatal(err)
		}
	}
	deferred := func(name string, f func(*agentv1.Task)) {
		t.Helper()
		if _, err := store.MutateStatus(store.Deferrable(ctx), mem, name, func(x *agentv1.Task) bool { f(x); return true }); err != nil {
			t.Fatal(err)
		}
	}
	// Written on its own: the removal of a reported Task leaves the journal without any other write.
	mutate(t, mem, "reported", func(x *agentv1.Task) { x.Status.MarkSucceeded(now, 1) })
	deferred("reported", func(x *agentv1.Task) { x.Status.MarkReported(now, false, "") })
	j.RecordDelivered("reported", []byte(`{"status":"COMPLETED"}`))
	testpoll.Until(t, 20*time.Second, "the deferred removal written", func() bool { return j.Depth() == 2 })
	// Folded into a later change that is waited for, of the same Task or not.
	deferred("folded", func(x *agentv1.Task) { x.Status.Report.RunningReported = true })
	mutate(t, mem, "folded", func(x *agentv1.Task) { x.Status.MarkRunning(now, 1) })
	// Written at Close.
	deferred("acked", func(x *agentv1.Task) { x.Status.Report.RunningReported = true })
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j, mem, n := open(t, dir)
	defer j.Close()
	if n != 2 {
		t.Fatalf("reopened journal holds %d tasks, want 2 (acked, folded)", n)
	}
	for name, want := range map[string]agentv1.TaskPhase{"acked": agentv1.TaskPending, "folded": agentv1.TaskRunning} {
		got, err := mem.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Status.Report.RunningReported || got.Status.Phase != want {
			t.Errorf("%s: phase %s, running reported %v; want %s, true", name, got.Status.Phase, got.Status.Report.RunningReported, want)
		}
	}
	if body, found := j.LookupDelivered("reported"); !found || string(body) != `{"status":"COMPLETED"}` {
		t.Errorf("delivered report after reopen: %q, %v", body, found)
	}
}
