package journal

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// echoLife is what the journal is asked in an ECHO task's life, in order: whether it was
// delivered before (at intake), its creation with its Running status (one write), its RUNNING report delivered (deferred), its
// final status, and its final report accepted (deferred: the removal).
type echoLife struct {
	id                             string
	running, acked, final, removed *agentv1.Task
	body                           []byte
}

func newEchoLife(i int) echoLife {
	id := fmt.Sprintf("task-%08d-0000-4000-8000-000000000000", i)
	now := metav1.NewTime(time.Now().UTC())
	t := &agentv1.Task{
		TypeMeta: metav1.TypeMeta{APIVersion: agentv1.GroupVersion.String(), Kind: "Task"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              agentv1.TaskName(id),
			Labels:            map[string]string{agentv1.LabelTaskType: "ECHO"},
			UID:               types.UID(fmt.Sprintf("%08d-1111-4222-8333-444444444444", i)),
			ResourceVersion:   "1",
			Generation:        1,
			CreationTimestamp: now,
		},
		Spec: agentv1.TaskSpec{
			TaskID: id, Type: agentv1.TypeEcho, AgentID: "agent-0123456789abcdef",
			Payload:   &runtime.RawExtension{Raw: []byte(`{"message":"hello from the benchmark"}`)},
			CreatedAt: &now,
		},
	}
	t.Status.MarkPending(now, 1)
	t.Status.MarkRunning(now, 1)
	acked := t.DeepCopy()
	acked.Status.Report.RunningReported = true
	final := acked.DeepCopy()
	final.Status.Result = &runtime.RawExtension{Raw: []byte(`{"message":"hello from the benchmark"}`)}
	final.Status.MarkSucceeded(now, 1)
	removed := final.DeepCopy()
	removed.Status.MarkReported(now, false, "")
	removed.Status.Result = nil
	body := fmt.Appendf(nil, `{"agent_id":"agent-0123456789abcdef","status":"COMPLETED","result":{"message":"hello from the benchmark"},"started_at":%q,"finished_at":%q}`, now.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	return echoLife{id: id, running: t, acked: acked, final: final, removed: removed, body: body}
}

// BenchmarkJournalTaskLife: the journal's whole share of ECHO tasks, 16 at once, through
// Persist and RecordDelivered as the memory store and the reporter call them. Per task it
// reports the transactions (commits/task) and the pages they wrote (pages/task, meta
// included).
func BenchmarkJournalTaskLife(b *testing.B) {
	var commits atomic.Int64
	j, err := open(b.TempDir(), logr.Discard(), WithWriteObserver(func(time.Duration, error) { commits.Add(1) }))
	if err != nil {
		b.Fatal(err)
	}
	go j.commitLoop()
	defer j.Close()
	const conc = 16
	warm := make([]echoLife, 200)
	for i := range warm {
		warm[i] = newEchoLife(-1 - i)
	}
	lives := make([]echoLife, b.N)
	for i := range lives {
		lives[i] = newEchoLife(i)
	}
	run := func(lives []echoLife) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= len(lives) {
						return
					}
					l := &lives[i]
					if _, found := j.LookupDelivered(l.id); found {
						b.Errorf("%s delivered before it ran", l.id)
					}
					if err := j.Persist(store.Event{Type: store.Added, Task: l.running})(); err != nil {
						b.Error(err)
						return
					}
					_ = j.Persist(store.Event{Type: store.Modified, Task: l.acked, Deferrable: true})
					if err := j.Persist(store.Event{Type: store.Modified, Task: l.final})(); err != nil {
						b.Error(err)
						return
					}
					j.RecordDelivered(l.id, l.body)
					_ = j.Persist(store.Event{Type: store.Modified, Task: l.removed, Deferrable: true})
				}
			})
		}
		wg.Wait()
		j.Flush()
	}
	run(warm)
	before, commits0, cpu0 := j.db.Stats(), commits.Load(), processCPU()
	b.ReportAllocs()
	b.ResetTimer()
	run(lives)
	b.StopTimer()
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/task")
	after := j.db.Stats()
	d := after.Sub(&before)
	b.ReportMetric(float64(d.TxStats.GetWrite())/float64(b.N), "pages/task")
	b.ReportMetric(float64(commits.Load()-commits0)/float64(b.N), "commits/task")
	if j.Depth() != 0 {
		b.Errorf("depth %d after every task was removed", j.Depth())
	}
}

// processCPU returns the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
