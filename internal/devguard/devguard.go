package devguard

import (
	"mime"
	"net"
	"net/http"
	"strings"
)

// Options configure Wrap.
type Options struct {
	// AllowRemote accepts any Host (the server listens on a non-loopback address on purpose);
	// submissions must still be JSON and not cross-origin.
	AllowRemote bool
}

// Wrap refuses, before next sees them:
//   - any request whose Host is not a loopback name or address (localhost, 127.0.0.0/8, ::1),
//     unless AllowRemote: a DNS-rebound page reaches the server under a foreign name (421);
//   - a state-changing request (anything but GET, HEAD, OPTIONS) that a browser marks as
//     cross-origin, by Sec-Fetch-Site or by an Origin that is not the server's own (403);
//   - a state-changing request to /dev/ whose Content-Type is not application/json (415): a
//     page can send text/plain or a form without asking, JSON only after a CORS preflight that
//     this server never grants.
func Wrap(next http.Handler, opts Options) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	guarded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !safeMethod(r.Method) && strings.HasPrefix(r.URL.Path, "/dev/") {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
	protected := cop.Handler(guarded)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !opts.AllowRemote && !IsLoopbackHost(r.Host) {
			http.Error(w, "the development orchestrator answers loopback names only (Host "+quoteHost(r.Host)+")", http.StatusMisdirectedRequest)
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !safeMethod(r.Method) && !sameOrigin(o, r) {
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		protected.ServeHTTP(w, r)
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// sameOrigin reports whether the Origin header names this server as the client reached it.
func sameOrigin(origin string, r *http.Request) bool {
	scheme := "http://"
	if r.TLS != nil {
		scheme = "https://"
	}
	return strings.EqualFold(origin, scheme+r.Host)
}

// IsLoopbackHost reports whether a Host header (name or address, with or without a port)
// names this machine's loopback interface.
func IsLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// IsLoopbackAddr reports whether a listen address (host:port) binds loopback only.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false // ":8080" binds every interface
	}
	return IsLoopbackHost(host)
}

func quoteHost(h string) string {
	if len(h) > 64 {
		h = h[:64] + "..."
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, h) + `"`
}
