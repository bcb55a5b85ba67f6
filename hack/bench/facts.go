package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// facts describe the machine a run was made on.
type facts struct {
	CPU       string
	Cores     int
	Kernel    string
	GoVersion string
	Date      time.Time
	StateFS   string // file system of the agents' state directories (the journal's fsyncs)
	LoadStart string
	LoadEnd   string
	Duration  time.Duration
	OSArch    string
	Memory    string
}

func machineFacts(stateDir string) facts {
	f := facts{
		CPU:       cpuModel(),
		Cores:     runtime.NumCPU(),
		Kernel:    readTrim("/proc/sys/kernel/osrelease"),
		GoVersion: runtime.Version(),
		Date:      time.Now().UTC(),
		StateFS:   fsType(stateDir),
		LoadStart: loadAverage(),
		OSArch:    runtime.GOOS + "/" + runtime.GOARCH,
		Memory:    memTotal(),
	}
	return f
}

func cpuModel() string {
	file, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// loadAverage returns the 1, 5 and 15 minute load averages.
func loadAverage() string {
	f := strings.Fields(readTrim("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// fsType names the file system holding dir (by its statfs magic number).
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	switch uint64(st.Type) {
	case 0xEF53:
		return "ext4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x01021994:
		return "tmpfs (fsync is free: journal figures are optimistic)"
	case 0x794C7630:
		return "overlayfs"
	case 0x2FC12FC1:
		return "zfs"
	default:
		return "other"
	}
}

// memTotal returns MemTotal from /proc/meminfo in GiB.
func memTotal() string {
	for line := range strings.SplitSeq(readTrim("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if len(f) != 2 {
				break
			}
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				return strconv.FormatFloat(kb/(1<<20), 'f', 1, 64) + " GiB"
			}
		}
	}
	return "unknown"
}
