package executors_test

import (
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/executors"
)

func TestKillLeftoverOnlyKillsTheSameGroup(t *testing.T) {
	t.Parallel()
	refs := make(chan executors.ProcessRef, 1)
	ctx := executors.WithProcessHook(t.Context(), func(ref executors.ProcessRef) { refs <- ref })
	proc := executors.NewProcess(executors.ProcessConfig{KillGrace: 100 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := proc.Run(ctx, executors.Command{Argv: []string{"sleep", "30"}})
		done <- err
	}()
	var ref executors.ProcessRef
	select {
	case ref = <-refs:
	case <-time.After(10 * time.Second):
		t.Fatal("the hook was not called")
	}
	if ref.PGID <= 1 || ref.BootID == "" || ref.StartTicks == 0 {
		t.Fatalf("incomplete ref %+v", ref)
	}

	// Another boot, or another process with the same id: left alone.
	for _, other := range []executors.ProcessRef{
		{PGID: ref.PGID, BootID: "another-boot", StartTicks: ref.StartTicks},
		{PGID: ref.PGID, BootID: ref.BootID, StartTicks: ref.StartTicks + 1},
		{PGID: 0, BootID: ref.BootID, StartTicks: ref.StartTicks},
	} {
		if killed, err := executors.KillLeftover(other); killed || err != nil {
			t.Fatalf("KillLeftover(%+v) = %v, %v; want it left alone", other, killed, err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the process ended early: %v", err)
	default:
	}

	killed, err := executors.KillLeftover(ref)
	if err != nil || !killed {
		t.Fatalf("KillLeftover(%+v) = %v, %v", ref, killed, err)
	}
	select {
	case err := <-done:
		if executors.ExitCode(err) != 137 {
			t.Fatalf("exit: %v, want killed by SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the group survived KillLeftover")
	}
	// Gone now: nothing more to kill.
	if killed, _ := executors.KillLeftover(ref); killed {
		t.Fatal("killed a group that no longer exists")
	}
}
