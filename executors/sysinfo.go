package executors

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

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
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			info.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				continue
			}
			switch f[0] {
			case "MemTotal:":
				info.MemTotalBytes = kb * 1024
			case "MemAvailable:":
				info.MemAvailableBytes = kb * 1024
			}
		}
	}
	var st unix.Statfs_t
	if diskPath != "" && unix.Statfs(diskPath, &st) == nil {
		info.DiskFreeBytes = st.Bavail * uint64(st.Bsize)
	}
	return info
}
