package main_test

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/internal/testdirs"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

var (
	debugBinaryOnce sync.Once
	debugBinary     string
	debugBinaryErr  error
)

// buildDebugBinary builds the agent with the letsbe_debug fault switches, once.
func buildDebugBinary(t *testing.T) string {
	t.Helper()
	debugBinaryOnce.Do(func() {
		debugBinary = filepath.Join(filepath.Dir(agentBinary), "letsbe-agent-debug")
		args := []string{"build", "-tags", "letsbe_debug", "-o", debugBinary}
		if raceEnabled {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, ".")...)
		build.Env = testdirs.OriginalEnviron()
		var out []byte
		if out, debugBinaryErr = build.CombinedOutput(); debugBinaryErr != nil {
			debugBinaryErr = &buildError{out: string(out), err: debugBinaryErr}
		}
	})
	if debugBinaryErr != nil {
		t.Fatal(debugBinaryErr)
	}
	return debugBinary
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "build the debug binary: " + e.err.Error() + "\n" + e.out }

// notifySocket is a fake systemd: a unixgram socket collecting sd_notify datagrams.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "notify-") // short: a socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &notifySocket{path: filepath.Join(dir, "sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			for line := range strings.SplitSeq(strings.TrimSpace(string(buf[:n])), "\n") {
				s.msgs = append(s.msgs, line)
			}
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *notifySocket) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// count returns how many lines are exactly line (or start with it, when it ends with "*").
func (s *notifySocket) count(line string) int {
	n := 0
	for _, l := range s.lines() {
		if l == line || strings.HasSuffix(line, "*") && strings.HasPrefix(l, strings.TrimSuffix(line, "*")) {
			n++
		}
	}
	return n
}

func startNotifyAgent(t *testing.T, bin string, o *orchestrator, sock *notifySocket, env ...string) *agentProc {
	t.Helper()
	p := runAgent(t, agenttest.Options{
		Binary: bin, OrchestratorURL: o.URL, StateDir: filepath.Join(t.TempDir(), "state"), Home: t.TempDir(),
		Env: append([]string{
			"AGENT_HTTP_ADDR=",
			"AGENT_HEARTBEAT_INTERVAL=100ms", "AGENT_POLL_INTERVAL=50ms", "AGENT_SHUTDOWN_GRACE=0s",
			"NOTIFY_SOCKET=" + sock.path,
		}, env...),
	})
	t.Cleanup(func() { // before runAgent's: kill, not drain
		p.Kill()
		if t.Failed() {
			t.Logf("notifications: %q", sock.lines())
		}
	})
	return p
}

// Type=notify: READY=1 once registered, STATUS= lines, WATCHDOG=1 while healthy, STOPPING=1
// at the drain.
func TestSystemdNotifyReadyStatusWatchdogStopping(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	sock := newNotifySocket(t)
	a := startNotifyAgent(t, agentBinary, o, sock, "WATCHDOG_USEC=300000")
	eventually(t, "READY=1", func() bool { return sock.count("READY=1") == 1 })
	if len(o.Agents()) != 1 {
		t.Errorf("READY=1 before registration: agents %+v", o.Agents())
	}
	eventually(t, "STATUS=registered", func() bool { return sock.count("STATUS=registered as a-1, running 0 tasks") > 0 })
	eventually(t, "watchdog pings", func() bool { return sock.count("WATCHDOG=1") >= 3 })
	a.Term()
	eventually(t, "STOPPING=1", func() bool { return sock.count("STOPPING=1") == 1 })
	eventually(t, "STATUS=draining", func() bool { return sock.count("STATUS=draining: 0 tasks running") > 0 })
	if code := a.stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// An unreachable orchestrator does not hold up READY=1 for more than the ready timeout.
func TestSystemdReadyWithoutOrchestrator(t *testing.T) {
	t.Parallel()
	bin := buildDebugBinary(t)
	sock := newNotifySocket(t)
	startNotifyAgent(t, bin, &orchestrator{&agenttest.Orchestrator{URL: "http://127.0.0.1:1"}}, sock, "LETSBE_DEBUG_READY_TIMEOUT=200ms")
	eventually(t, "READY=1", func() bool { return sock.count("READY=1") == 1 })
	eventually(t, "STATUS=waiting", func() bool { return sock.count("STATUS=waiting for the orchestrator: not registered yet") > 0 })
}

// A wedged agent (every orchestrator request hangs: the debug build's fault switch) stops
// feeding the watchdog, says why, and keeps not feeding it.
func TestSystemdWatchdogStopsWhenWedged(t *testing.T) {
	t.Parallel()
	bin := buildDebugBinary(t)
	o := startOrchestrator(t, orchestratortest.Options{})
	sock := newNotifySocket(t)
	wedge := filepath.Join(t.TempDir(), "wedge")
	startNotifyAgent(t, bin, o, sock, "WATCHDOG_USEC=300000", "LETSBE_DEBUG_WEDGE_FILE="+wedge)
	eventually(t, "watchdog pings", func() bool { return sock.count("WATCHDOG=1") >= 3 })

	if err := os.WriteFile(wedge, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	const stuck = "STATUS=stuck, not feeding the watchdog: no request to the orchestrator*"
	// The limit is two heartbeats plus a 15s request timeout.
	testpoll.Until(t, 90*time.Second, "the agent to report itself stuck three times", func() bool { return sock.count(stuck) >= 3 })
	lines := sock.lines()
	first := -1
	for i, l := range lines {
		if strings.HasPrefix(l, strings.TrimSuffix(stuck, "*")) {
			first = i
			break
		}
	}
	for _, l := range lines[first:] {
		if l == "WATCHDOG=1" {
			t.Errorf("a watchdog ping after the agent said it is stuck: %q", lines[first:])
			break
		}
	}
}

// The release binary carries no fault switch.
func TestReleaseBinaryHasNoFaultSwitch(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(agentBinary)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("LETSBE_DEBUG_")) {
		t.Error("the release binary contains the letsbe_debug fault switches")
	}
}
