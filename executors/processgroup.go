package executors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/prometheus/procfs"
)

// ProcessRef identifies a process group well enough to find it again after the agent
// restarted, and never to mistake another group for it: the group id, the kernel's boot id and
// the leader's start time (clock ticks since boot).
type ProcessRef struct {
	PGID       int
	BootID     string
	StartTicks uint64
}

type processHookKey struct{}

// WithProcessHook returns a context under which Process.Run calls hook with the identity of
// every process group it starts, right after the start.
func WithProcessHook(ctx context.Context, hook func(ProcessRef)) context.Context {
	return context.WithValue(ctx, processHookKey{}, hook)
}

func identifyGroup(pgid int) ProcessRef {
	ref := ProcessRef{PGID: pgid, BootID: bootID()}
	ref.StartTicks, _ = startTicks(pgid)
	return ref
}

// KillLeftover kills the process group ref names if it is still the same group: the boot is
// the same and its leader started at the same tick. It reports whether it killed anything. A
// group whose leader is gone is left alone: it cannot be told from a newer group with the
// same id.
func KillLeftover(ref ProcessRef) (bool, error) {
	if ref.PGID <= 1 || ref.BootID == "" || ref.StartTicks == 0 {
		return false, nil
	}
	if bootID() != ref.BootID {
		return false, nil // rebooted: nothing of that boot survives
	}
	ticks, err := startTicks(ref.PGID)
	if err != nil || ticks != ref.StartTicks {
		return false, nil //nolint:nilerr // gone (unreadable), or the id now belongs to another process: nothing of ours to kill
	}
	if err := KillGroup(ref.PGID, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// KillGroup sends sig to every process of the process group pgid (a leader started with
// Setpgid names its group). It is the one way the agent signals a group: [Process.Run] on
// cancellation and when the leader exits, [KillLeftover] after a restart, and the browser of a
// PLAYWRIGHT task. A group that is gone is an error matching syscall.ESRCH.
func KillGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 1 {
		return fmt.Errorf("kill process group %d: not a process group of the agent's", pgid)
	}
	if err := syscall.Kill(-pgid, sig); err != nil {
		return fmt.Errorf("kill process group %d: %w", pgid, err)
	}
	return nil
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// startTicks is the start time of process pid, in clock ticks since boot (field 22 of
// /proc/PID/stat).
func startTicks(pid int) (uint64, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.Stat()
	if err != nil {
		return 0, err
	}
	return st.Starttime, nil
}
