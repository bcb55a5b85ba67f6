package heapsample

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestOff: imported, the package has turned sampling off before anything here runs; with a
// rate set by GODEBUG it keeps that rate (checked in a child process of this test binary).
func TestOff(t *testing.T) {
	if want := os.Getenv("HEAPSAMPLE_WANT_RATE"); want != "" {
		if strconv.Itoa(runtime.MemProfileRate) != want {
			t.Fatalf("GODEBUG=%s: MemProfileRate %d, want %s", os.Getenv("GODEBUG"), runtime.MemProfileRate, want)
		}
		return
	}
	if strings.Contains(os.Getenv("GODEBUG"), "memprofilerate=") {
		t.Skip("GODEBUG sets memprofilerate")
	}
	if runtime.MemProfileRate != 0 {
		t.Fatalf("MemProfileRate %d, want 0: sampling off", runtime.MemProfileRate)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestOff$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "GODEBUG=memprofilerate=4096", "HEAPSAMPLE_WANT_RATE=4096")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("with GODEBUG=memprofilerate=4096: %v\n%s", err, out)
	}
}
