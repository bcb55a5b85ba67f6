package agenthttp

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// listenerStateFile, in the state directory, says why the local listener is not serving, for
// `letsbe-agent status` (which cannot ask the agent then).
const listenerStateFile = "http-listener.json"

// ListenerState is the content of listenerStateFile.
type ListenerState struct {
	Addr  string    `json:"addr"`
	Error string    `json:"error"`
	Since time.Time `json:"since"`
}

// retryListener is the local listener when AGENT_HTTP_ADDR could not be bound at start (the
// port is taken, say): the agent works without it, and it binds in the background, retrying
// with a growing delay, until it gets the address or is closed. Accept blocks until then.
type retryListener struct {
	addr     string
	log      logr.Logger
	stateDir string
	ready    chan struct{}
	closed   chan struct{}
	once     sync.Once
	mu       sync.Mutex
	ln       net.Listener
}

func newRetryListener(addr, stateDir string, firstErr error, log logr.Logger) *retryListener {
	l := &retryListener{addr: addr, log: log, stateDir: stateDir, ready: make(chan struct{}), closed: make(chan struct{})}
	l.record(firstErr)
	go l.retry()
	return l
}

func (l *retryListener) record(err error) {
	path := filepath.Join(l.stateDir, listenerStateFile)
	if err == nil {
		_ = os.Remove(path)
		return
	}
	b, _ := json.Marshal(ListenerState{Addr: l.addr, Error: err.Error(), Since: time.Now().UTC()})
	_ = os.WriteFile(path, b, 0o600)
}

func (l *retryListener) retry() {
	delay := time.Second
	for {
		select {
		case <-l.closed:
			return
		case <-time.After(delay):
		}
		ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", l.addr)
		if err != nil {
			l.log.V(1).Info("Local listener still cannot bind; retrying", "addr", l.addr, "error", err.Error(), "retryIn", delay.String())
			delay = min(2*delay, 30*time.Second)
			continue
		}
		l.mu.Lock()
		select {
		case <-l.closed:
			l.mu.Unlock()
			_ = ln.Close()
			return
		default:
		}
		l.ln = ln
		l.mu.Unlock()
		l.record(nil)
		l.log.Info("Serving metrics and health", "addr", ln.Addr().String(), "afterRetry", true)
		close(l.ready)
		return
	}
}

func (l *retryListener) Accept() (net.Conn, error) {
	select {
	case <-l.ready:
		return l.ln.Accept()
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *retryListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Close()
	}
	return nil
}

func (l *retryListener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		return l.ln.Addr()
	}
	return unboundAddr(l.addr)
}

type unboundAddr string

func (a unboundAddr) Network() string { return "tcp" }
func (a unboundAddr) String() string  { return string(a) }

// Listen binds AGENT_HTTP_ADDR, or returns a listener that keeps trying to bind it in the
// background when it cannot (logged loudly, and recorded in stateDir for ReadListenerState).
func Listen(addr, stateDir string, log logr.Logger) net.Listener {
	ln, err := new(net.ListenConfig).Listen(context.Background(), "tcp", addr)
	if err == nil {
		_ = os.Remove(filepath.Join(stateDir, listenerStateFile))
		return ln
	}
	log.Error(err, "Cannot listen on AGENT_HTTP_ADDR; the agent works without its local listener and keeps trying", "addr", addr)
	return newRetryListener(addr, stateDir, err, log)
}

// RequireToken guards every path but /healthz with the bearer token (constant-time compare).
func RequireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="letsbe-agent"`)
				http.Error(w, "AGENT_HTTP_TOKEN required", http.StatusUnauthorized)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// ReadListenerState returns what the agent recorded about a listener it could not bind.
func ReadListenerState(stateDir string) (ListenerState, bool) {
	var st ListenerState
	b, err := os.ReadFile(filepath.Join(stateDir, listenerStateFile))
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}
