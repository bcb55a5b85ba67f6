package browser

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// killTree kills the browser's processes: its process group pgid (0 when
// unknown), and every process whose command line mentions the session's
// data directory in --user-data-dir (Chromium passes it to its children, so
// this also finds a child that left the group). It returns once neither is
// found alive for a few passes in a row, or after limit.
func killTree(pgid int, dataDir string, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if pgid > 0 {
			if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				pgid = 0
			}
		}
		found := 0
		for _, p := range browserProcesses(pgid, dataDir) {
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

// browserProcesses lists the live (not zombie) processes that are in process
// group pgid (if > 0) or have the argument --user-data-dir=dataDir (if not
// empty).
func browserProcesses(pgid int, dataDir string) []int {
	marker := []byte("--user-data-dir=" + dataDir)
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
		state, group, ok := procStat(pid)
		if !ok || state == 'Z' || state == 'X' {
			continue
		}
		if pgid > 0 && group == pgid {
			pids = append(pids, pid)
			continue
		}
		if dataDir != "" {
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err == nil && slices.ContainsFunc(bytes.Split(cmdline, []byte{0}), func(arg []byte) bool { return bytes.Equal(arg, marker) }) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// procStat returns the state and the process group of pid from
// /proc/pid/stat.
func procStat(pid int) (state byte, pgid int, ok bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may contain spaces and parens.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 3 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	g, err := strconv.Atoi(string(fields[2]))
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], g, true
}
