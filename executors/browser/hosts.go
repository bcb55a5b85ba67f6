package browser

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
)

// hostList is the browser's host allowlist. An empty list allows every host.
// An entry is a host name or an IP address, matched exactly (ports are not
// part of it), or "*.example.com" for every subdomain of example.com (but not
// example.com itself).
type hostList struct {
	entries  []string // normalized, sorted
	exact    map[string]bool
	suffixes []string // ".example.com" for "*.example.com"
}

// newHostList validates and normalizes the allowlist entries.
func newHostList(entries []string) (hostList, error) {
	h := hostList{exact: map[string]bool{}}
	for _, e := range entries {
		host := normalizeHost(e)
		wildcard := strings.HasPrefix(host, "*.")
		name := strings.TrimPrefix(host, "*.")
		ip := net.ParseIP(name)
		if name == "" || (ip == nil && strings.ContainsAny(name, "*/:@?#,[]\\ \t")) || (wildcard && ip != nil) {
			return hostList{}, fmt.Errorf("allowed host %q: want a host name, an IP address or *.domain", e)
		}
		if wildcard {
			h.suffixes = append(h.suffixes, "."+name)
		} else {
			h.exact[name] = true
		}
		h.entries = append(h.entries, host)
	}
	slices.Sort(h.entries)
	h.entries = slices.Compact(h.entries)
	return h, nil
}

func isIPv6(s string) bool { return strings.Contains(s, ":") && net.ParseIP(s) != nil }

// normalizeHost lowercases a host and drops IPv6 brackets and a trailing dot.
func normalizeHost(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.TrimSuffix(host, ".")
}

// empty reports whether every host is allowed.
func (h hostList) empty() bool { return len(h.entries) == 0 }

// allows reports whether requests to host may go out.
func (h hostList) allows(host string) bool {
	if h.empty() {
		return true
	}
	host = normalizeHost(host)
	if h.exact[host] {
		return true
	}
	for _, suffix := range h.suffixes {
		if strings.HasSuffix(host, suffix) {
			return true
		}
	}
	return false
}

// allowsURL reports whether a request to rawURL may go out. URLs without a
// network host (data:, blob:, about:) are allowed; other URLs that do not
// parse, or have no host, are not.
func (h hostList) allowsURL(rawURL string) bool {
	if h.empty() {
		return true
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "data", "blob", "about":
		return true
	}
	return u.Hostname() != "" && h.allows(u.Hostname())
}

// refusal explains that host is not allowed.
func (h hostList) refusal(host string) string {
	return fmt.Sprintf("host %q is not in the browser host allowlist (AGENT_BROWSER_ALLOWED_HOSTS: %s)",
		normalizeHost(host), strings.Join(h.entries, ", "))
}

// resolverRules returns a --host-resolver-rules value that makes every host
// outside the list unresolvable, as a second line of defence for requests
// that the Fetch interception of the page does not see (other tabs, workers,
// WebSockets). Empty when every host is allowed.
func (h hostList) resolverRules() string {
	if h.empty() {
		return ""
	}
	rules := []string{"MAP * ~NOTFOUND"}
	for _, e := range h.entries {
		if isIPv6(e) {
			e = "[" + e + "]"
		}
		rules = append(rules, "EXCLUDE "+e)
	}
	return strings.Join(rules, ", ")
}
