package executors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// TestMain makes the test binary a child subreaper, so that grandchildren
// orphaned by a killed process group are re-parented to it and can be reaped
// by groupGone: on machines whose init does not reap zombies, a zombie would
// otherwise keep its process group alive for kill(-pgid, 0).
func TestMain(m *testing.M) {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		fmt.Fprintf(os.Stderr, "prctl(PR_SET_CHILD_SUBREAPER): %v\n", errno)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// waitGroupGone fails the test unless no process of group pgid is left,
// reaping the group's zombies that were re-parented to the test binary.
// It polls because the kernel delivers signals and re-parents asynchronously.
func waitGroupGone(t *testing.T, pgid int) {
	t.Helper()
	testpoll.UntilNil(t, 10*time.Second, fmt.Sprintf("process group %d to be gone", pgid), func() error {
		for _, pid := range groupMembers(pgid) {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		}
		if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("members %v left (kill: %v)", groupMembers(pgid), err)
		}
		return nil
	})
}

// groupMembers lists the pids whose process group is pgid.
func groupMembers(pgid int) []int {
	procs, _ := procfs.AllProcs()
	var pids []int
	for _, p := range procs {
		if st, err := p.Stat(); err == nil && st.PGRP == pgid {
			pids = append(pids, p.PID)
		}
	}
	return pids
}

// killAndReap kills a process that escaped its group and reaps it.
func killAndReap(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
	_ = testpoll.Wait(context.Background(), 5*time.Second, func() error {
		var ws syscall.WaitStatus
		got, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		switch {
		case got == pid, errors.Is(err, syscall.ECHILD): // reaped, or not this process's child
			return nil
		case err != nil:
			return err
		}
		return errors.New("not reaped yet")
	})
}
