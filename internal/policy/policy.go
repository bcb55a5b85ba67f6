package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/internal/boundedread"
)

// maxFileBytes bounds a policy file.
const maxFileBytes = 1 << 20

// File is the AGENT_POLICY document. Every section is optional; an absent section does not
// narrow what the settings allow.
type File struct {
	// Types are the task types that may run.
	Types []string `json:"types,omitempty"`
	// Shell bounds SHELL tasks.
	Shell *ShellRules `json:"shell,omitempty"`
	// Files bounds the file task types (FILE_WRITE, ENV_UPDATE, DOCKER_RELOAD and the other
	// compose types).
	Files *FileRules `json:"files,omitempty"`
	// Browser bounds PLAYWRIGHT tasks.
	Browser *BrowserRules `json:"browser,omitempty"`
	// Compose narrows what the Compose task types may deploy (the AGENT_COMPOSE_* settings).
	Compose *ComposeRules `json:"compose,omitempty"`
}

// ComposeRules narrow the compose settings: a rule left out keeps its setting, a rule given
// can only take away from it (a permission needs both the setting and the rule).
type ComposeRules struct {
	// AllowPrivileged: false refuses privileged containers even when
	// AGENT_COMPOSE_ALLOW_PRIVILEGED allows them.
	AllowPrivileged *bool `json:"allow_privileged,omitempty"`
	// AllowHostNamespaces: false refuses host namespaces (AGENT_COMPOSE_ALLOW_HOST_NAMESPACES).
	AllowHostNamespaces *bool `json:"allow_host_namespaces,omitempty"`
	// AllowedCapabilities keeps only these of AGENT_COMPOSE_ALLOWED_CAPABILITIES ([]: none).
	AllowedCapabilities []string `json:"allowed_capabilities,omitempty"`
	// AllowDevices: false refuses devices (AGENT_COMPOSE_ALLOW_DEVICES).
	AllowDevices *bool `json:"allow_devices,omitempty"`
	// BindRoots keeps only the parts of AGENT_COMPOSE_BIND_ROOTS (or of the file roots) inside
	// these directories.
	BindRoots []string `json:"bind_roots,omitempty"`
}

// ShellRules bounds SHELL tasks.
type ShellRules struct {
	// Commands are the command-line patterns (see Pattern) a SHELL task must match one of.
	Commands []string `json:"commands"`
}

// FileRules bounds the file task types.
type FileRules struct {
	// Roots are the directories every file task type may change.
	Roots []string `json:"roots,omitempty"`
	// ByType replaces Roots for one task type, e.g. {"ENV_UPDATE": ["/opt/letsbe/app"]}.
	ByType map[string][]string `json:"by_type,omitempty"`
}

// BrowserRules bounds PLAYWRIGHT tasks.
type BrowserRules struct {
	// AllowedHosts are the only hosts a flow may reach: names, IP addresses or *.domain.
	AllowedHosts []string `json:"allowed_hosts"`
}

// ParseFile decodes a policy document strictly: unknown keys, duplicate keys and bad values are
// errors.
func ParseFile(b []byte) (*File, error) {
	var f File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, err
	}
	if f.Shell != nil {
		for _, c := range f.Shell.Commands {
			if _, err := ParsePattern(c); err != nil {
				return nil, err
			}
		}
	}
	if f.Files != nil {
		if err := checkRoots("files.roots", f.Files.Roots); err != nil {
			return nil, err
		}
		for typ, roots := range f.Files.ByType {
			if !slices.Contains(FileTypes, typ) {
				return nil, fmt.Errorf("files.by_type: %q is not a file task type (want one of %s)", typ, strings.Join(FileTypes, ", "))
			}
			if err := checkRoots("files.by_type."+typ, roots); err != nil {
				return nil, err
			}
		}
	}
	if f.Compose != nil {
		if err := checkRoots("compose.bind_roots", f.Compose.BindRoots); err != nil {
			return nil, err
		}
		for _, c := range f.Compose.AllowedCapabilities {
			if strings.TrimSpace(c) == "" || strings.ContainsAny(c, " \t,") {
				return nil, fmt.Errorf("compose.allowed_capabilities: %q is not a capability name (e.g. NET_BIND_SERVICE)", c)
			}
		}
	}
	for _, typ := range f.Types {
		if strings.TrimSpace(typ) == "" || strings.ToUpper(typ) != typ {
			return nil, fmt.Errorf("types: %q is not a task type (upper case, e.g. SHELL)", typ)
		}
	}
	return &f, nil
}

func checkRoots(where string, roots []string) error {
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			return fmt.Errorf("%s: %q is not an absolute path", where, r)
		}
	}
	return nil
}

// LoadFile reads and parses a policy file.
func LoadFile(path string) (*File, error) {
	b, err := boundedread.File(path, maxFileBytes)
	if err != nil {
		return nil, err
	}
	f, err := ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// FileTypes are the task types whose paths the file roots bound.
var FileTypes = []string{"FILE_WRITE", "ENV_UPDATE", "DOCKER_RELOAD", "COMPOSE_STATUS", "COMPOSE_LOGS", "COMPOSE_ROLLBACK"}

// Settings are the agent settings that are shorthands for policy rules.
type Settings struct {
	// Types are the task types the agent supports (its executors).
	Types []string
	// AllowedCommands (AGENT_ALLOWED_COMMANDS): each program name is the pattern "name **".
	AllowedCommands []string
	// FileRoots (AGENT_FILE_ROOTS): the roots of every file task type.
	FileRoots []string
	// BrowserAllowedHosts (AGENT_BROWSER_ALLOWED_HOSTS): empty means any host.
	BrowserAllowedHosts []string
	// Compose (AGENT_COMPOSE_*): what Compose projects may ask of the host; empty BindRoots
	// mean the file roots.
	Compose executors.ComposePolicy
}

// Policy is the effective policy: what a task may do. Build it with New.
type Policy struct {
	// Types that may run, sorted.
	Types []string `json:"types"`
	// Shell are the SHELL command-line patterns, sorted.
	Shell []string `json:"shell"`
	// FileRoots are the roots of each file task type that may run.
	FileRoots map[string][]string `json:"file_roots"`
	// BrowserHosts are the hosts PLAYWRIGHT may reach; nil means any, empty none.
	BrowserHosts []string `json:"browser_hosts"`
	// Compose is what the Compose task types may deploy, applied to each loaded project.
	Compose executors.ComposePolicy `json:"compose"`
	// Source names where the rules came from (the settings, and the file if any).
	Source string `json:"source"`

	patterns []Pattern
	// fromFile says which rules the file narrowed: the others are the settings alone, which
	// the executors enforce themselves (with their own messages).
	fromFile struct{ types, shell, files, browser bool }
}

// New returns the effective policy of the settings narrowed by f (nil: the settings alone).
// Where both say something, a task must satisfy both: the narrower wins.
func New(s Settings, f *File, source string) (*Policy, error) {
	p := &Policy{Source: "settings", FileRoots: map[string][]string{}}
	if source != "" {
		p.Source = "settings + " + source
	}
	if f != nil {
		p.fromFile.types = f.Types != nil
		p.fromFile.shell = f.Shell != nil
		p.fromFile.files = f.Files != nil
		p.fromFile.browser = f.Browser != nil && len(f.Browser.AllowedHosts) > 0
	}
	types := slices.Clone(s.Types)
	if f != nil && f.Types != nil {
		types = slices.DeleteFunc(types, func(t string) bool { return !slices.Contains(f.Types, t) })
	}
	slices.Sort(types)
	p.Types = slices.Compact(types)
	if p.Types == nil {
		p.Types = []string{}
	}

	var base []Pattern
	for _, c := range s.AllowedCommands {
		pat, err := ParsePattern(c + " **")
		if err != nil {
			return nil, fmt.Errorf("AGENT_ALLOWED_COMMANDS: %w", err)
		}
		base = append(base, pat)
	}
	pats := base
	if f != nil && f.Shell != nil {
		pats = nil
		for _, c := range f.Shell.Commands {
			pat, _ := ParsePattern(c) // checked by ParseFile
			if slices.ContainsFunc(base, func(b Pattern) bool { return b.Covers(pat) }) {
				pats = append(pats, pat)
			}
		}
	}
	slices.SortFunc(pats, func(a, b Pattern) int { return strings.Compare(a.text, b.text) })
	pats = slices.CompactFunc(pats, func(a, b Pattern) bool { return a.text == b.text })
	p.patterns = pats
	p.Shell = make([]string, len(pats))
	for i, pat := range pats {
		p.Shell[i] = pat.text
	}

	for _, typ := range FileTypes {
		if !slices.Contains(p.Types, typ) {
			continue
		}
		roots := cleanRoots(s.FileRoots)
		if f != nil && f.Files != nil {
			fileRoots := f.Files.Roots
			if byType, ok := f.Files.ByType[typ]; ok {
				fileRoots = byType
			}
			if fileRoots != nil {
				roots = intersectRoots(roots, cleanRoots(fileRoots))
			}
		}
		p.FileRoots[typ] = roots
	}

	var compose *ComposeRules
	if f != nil {
		compose = f.Compose
	}
	p.Compose = composePolicy(s.Compose, s.FileRoots, compose, source)

	// nil: any host; empty: none.
	if len(s.BrowserAllowedHosts) > 0 {
		p.BrowserHosts = slices.Clone(s.BrowserAllowedHosts)
		slices.Sort(p.BrowserHosts)
	}
	if f != nil && f.Browser != nil && len(f.Browser.AllowedHosts) > 0 {
		p.BrowserHosts = intersectHosts(p.BrowserHosts, f.Browser.AllowedHosts)
	}
	return p, nil
}

// composePolicy narrows the compose settings by the file's rules (nil: the settings alone).
// A sensitive host path (such as /var/run/docker.sock) stays bindable only when the settings
// list it exactly themselves: a file rule inside a broad setting cannot open one.
func composePolicy(set executors.ComposePolicy, fileRoots []string, r *ComposeRules, source string) executors.ComposePolicy {
	c := set
	c.BindRoots = cleanRoots(set.BindRoots)
	if len(c.BindRoots) == 0 {
		c.BindRoots = cleanRoots(fileRoots)
	}
	c.AllowedCapabilities = normCaps(set.AllowedCapabilities)
	if r == nil {
		return c
	}
	c.PolicyFile = source
	and := func(setting bool, rule *bool) bool { return setting && (rule == nil || *rule) }
	c.AllowPrivileged = and(c.AllowPrivileged, r.AllowPrivileged)
	c.AllowHostNamespaces = and(c.AllowHostNamespaces, r.AllowHostNamespaces)
	c.AllowDevices = and(c.AllowDevices, r.AllowDevices)
	if r.AllowedCapabilities != nil {
		want := normCaps(r.AllowedCapabilities)
		c.AllowedCapabilities = slices.DeleteFunc(c.AllowedCapabilities, func(cap string) bool { return !slices.Contains(want, cap) })
	}
	if r.BindRoots != nil {
		settingRoots := c.BindRoots
		c.BindRoots = slices.DeleteFunc(intersectRoots(settingRoots, cleanRoots(r.BindRoots)), func(root string) bool {
			return executors.IsSensitiveHostPath(root) && !slices.Contains(settingRoots, root)
		})
	}
	return c
}

// normCaps returns capability names upper case without the CAP_ prefix, sorted, once each.
func normCaps(caps []string) []string {
	out := make([]string, 0, len(caps))
	for _, c := range caps {
		out = append(out, strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_"))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func cleanRoots(roots []string) []string {
	out := make([]string, 0, len(roots))
	for _, r := range roots {
		out = append(out, filepath.Clean(r))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// within reports whether path is root or inside it, lexically.
func within(path, root string) bool {
	if root == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == root || strings.HasPrefix(path, root+"/")
}

// intersectRoots returns the directories inside both a root of a and a root of b.
func intersectRoots(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		for _, y := range b {
			switch {
			case within(y, x):
				out = append(out, y)
			case within(x, y):
				out = append(out, x)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// intersectHosts narrows host list a (nil: any host) by b (not empty).
func intersectHosts(a, b []string) []string {
	if a == nil {
		out := slices.Clone(b)
		slices.Sort(out)
		return out
	}
	out := []string{}
	for _, x := range b {
		if hostAllowed(a, x) {
			out = append(out, x)
		}
	}
	for _, x := range a {
		if hostAllowed(b, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hostAllowed reports whether host (a name, an address or *.domain) is allowed by list.
func hostAllowed(list []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, e := range list {
		e = strings.ToLower(strings.TrimSuffix(e, "."))
		if e == host {
			return true
		}
		if suffix, ok := strings.CutPrefix(e, "*."); ok {
			h := strings.TrimPrefix(host, "*.")
			if h != suffix && strings.HasSuffix(h, "."+suffix) {
				return true
			}
		}
	}
	return false
}

// ShellPrograms returns the programs the SHELL patterns name.
func (p *Policy) ShellPrograms() []string {
	var out []string
	for _, pat := range p.patterns {
		out = append(out, pat.Program())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Canonical returns the policy as canonical JSON (sorted keys, no spaces).
func (p *Policy) Canonical() []byte {
	b, _ := json.Marshal(struct { // strings, slices and maps of them always encode, keys sorted
		Types        []string            `json:"types"`
		Shell        []string            `json:"shell"`
		FileRoots    map[string][]string `json:"file_roots"`
		BrowserHosts []string            `json:"browser_hosts"`
		Compose      composeCanonical    `json:"compose"`
	}{p.Types, p.Shell, p.FileRoots, p.BrowserHosts, p.composeCanonical()})
	return b
}

// composeCanonical is the compose policy as hashed and reported, its lists never null.
type composeCanonical struct {
	AllowPrivileged     bool     `json:"allow_privileged"`
	AllowHostNamespaces bool     `json:"allow_host_namespaces"`
	AllowedCapabilities []string `json:"allowed_capabilities"`
	AllowDevices        bool     `json:"allow_devices"`
	BindRoots           []string `json:"bind_roots"`
}

func (p *Policy) composeCanonical() composeCanonical {
	c := p.Compose
	nonNil := func(l []string) []string {
		if l == nil {
			return []string{}
		}
		return l
	}
	return composeCanonical{c.AllowPrivileged, c.AllowHostNamespaces, nonNil(c.AllowedCapabilities), c.AllowDevices, nonNil(c.BindRoots)}
}

// SHA256 returns the hex SHA-256 of Canonical.
func (p *Policy) SHA256() string {
	sum := sha256.Sum256(p.Canonical())
	return hex.EncodeToString(sum[:])
}

// Summary returns what registration reports about the policy besides its hash.
func (p *Policy) Summary() map[string]any {
	hosts := any("any")
	if p.BrowserHosts != nil {
		hosts = p.BrowserHosts
	}
	return map[string]any{
		"types":         p.Types,
		"shell":         p.Shell,
		"file_roots":    p.FileRoots,
		"browser_hosts": hosts,
		"compose":       p.composeCanonical(),
	}
}
