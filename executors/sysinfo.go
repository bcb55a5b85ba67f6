package executors

import (
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// SystemInfo is a snapshot of the host's basic figures, for heartbeats.
type SystemInfo struct {
	Load1             float64
	MemTotalBytes     uint64
	MemAvailableBytes uint64
	DiskFreeBytes     uint64
}

// ReadSystemInfo reads the load average and memory from /proc and the free space of the file
// system holding diskPath. Figures it cannot read stay zero: a heartbeat never fails for them.
func ReadSystemInfo(diskPath string) SystemInfo {
	var info SystemInfo
	if fs, err := procfs.NewDefaultFS(); err == nil {
		if avg, err := fs.LoadAvg(); err == nil {
			info.Load1 = avg.Load1
		}
		if mem, err := fs.Meminfo(); err == nil {
			info.MemTotalBytes = valueOf(mem.MemTotalBytes)
			info.MemAvailableBytes = valueOf(mem.MemAvailableBytes)
		}
	}
	var st unix.Statfs_t
	if diskPath != "" && unix.Statfs(diskPath, &st) == nil {
		info.DiskFreeBytes = st.Bavail * uint64(st.Bsize)
	}
	return info
}

// valueOf is *p, or 0 when p is nil (a figure the kernel did not show).
func valueOf(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}
