package browser

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
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
		for _, p := range browserProcesses(profile) {
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

// browserProcesses lists the live (not zombie) processes that mention the
// directory profile in their command line.
func browserProcesses(profile string) []int {
	marker := []byte(profile + "/")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if state, ok := procState(pid); !ok || state == 'Z' || state == 'X' {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procState returns the state of pid (R, S, Z...) from /proc/pid/stat.
func procState(pid int) (state byte, ok bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ...; comm may contain spaces and parens.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0, false
	}
	return stat[i+2], true
}
