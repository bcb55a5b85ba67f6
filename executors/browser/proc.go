package browser

import (
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
)

// killTree kills what is left of a browser once its main process has been
// reaped: every process whose command line mentions the session's profile
// directory (Chromium passes --user-data-dir to its children, and its crash
// handler gets a database inside the profile's HOME). The process group is
// not used here: once its leader is reaped and its members are gone, its
// number may belong to someone else (the group is killed by cmd.Cancel,
// while the leader still holds it). It returns once none is found alive for
// a few passes in a row, or after limit.
func killTree(profile string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		found := 0
		for _, p := range processesMentioning(profile + "/") {
			_ = syscall.Kill(p, syscall.SIGKILL)
			found++
		}
		if found == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// processesMentioning lists the live (not zombie) processes other than the agent whose
// command line contains s.
func processesMentioning(s string) []int {
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, p := range procs {
		if p.PID == self {
			continue
		}
		if st, err := p.Stat(); err != nil || st.State == "Z" || st.State == "X" {
			continue
		}
		args, err := p.CmdLine()
		if err == nil && slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, s) }) {
			pids = append(pids, p.PID)
		}
	}
	return pids
}
