package executors

import "testing"

func TestReadSystemInfo(t *testing.T) {
	t.Parallel()
	info := ReadSystemInfo(t.TempDir())
	if info.MemTotalBytes == 0 || info.MemAvailableBytes == 0 || info.MemAvailableBytes > info.MemTotalBytes {
		t.Errorf("memory: total %d, available %d", info.MemTotalBytes, info.MemAvailableBytes)
	}
	if info.Load1 < 0 || info.DiskFreeBytes == 0 {
		t.Errorf("load %v, disk free %d", info.Load1, info.DiskFreeBytes)
	}
	if got := ReadSystemInfo(""); got.DiskFreeBytes != 0 {
		t.Errorf("no disk path: disk free %d, want 0", got.DiskFreeBytes)
	}
}
