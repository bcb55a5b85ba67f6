package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
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
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "unknown"
	}
	cpus, err := fs.CPUInfo()
	if err != nil || len(cpus) == 0 || cpus[0].ModelName == "" {
		return "unknown"
	}
	return cpus[0].ModelName
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
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "unknown"
	}
	avg, err := fs.LoadAvg()
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", avg.Load1, avg.Load5, avg.Load15)
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
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return "unknown"
	}
	mem, err := fs.Meminfo()
	if err != nil || mem.MemTotalBytes == nil {
		return "unknown"
	}
	return strconv.FormatFloat(float64(*mem.MemTotalBytes)/(1<<30), 'f', 1, 64) + " GiB"
}
