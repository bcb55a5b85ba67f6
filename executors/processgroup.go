package executors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
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
	if err := syscall.Kill(-ref.PGID, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return false, nil
		}
		return false, fmt.Errorf("kill process group %d: %w", ref.PGID, err)
	}
	return true, nil
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// startTicks reads field 22 (starttime) of /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
