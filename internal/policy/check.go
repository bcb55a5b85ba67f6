package policy

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
)

// Refusal is a task the policy does not allow: Rule names the rule ("policy.types",
// "policy.shell", "policy.files", "policy.browser").
type Refusal struct {
	Rule   string
	Reason string
}

func (r *Refusal) Error() string { return r.Rule + ": " + r.Reason }

// Check returns nil when the policy allows the task, else a *Refusal. It reads only what the
// policy bounds; a payload it cannot read is left to the executor, which refuses it.
func (p *Policy) Check(task *agentv1.Task) error {
	typ := task.Spec.Type
	if !slices.Contains(p.Types, typ) {
		return &Refusal{"policy.types", fmt.Sprintf("task type %s is not allowed (allowed: %s)", quote(typ), list(p.Types))}
	}
	var payload json.RawMessage
	if task.Spec.Payload != nil {
		payload = task.Spec.Payload.Raw
	}
	// What only the settings say, the executors enforce (and explain) themselves.
	switch {
	case typ == agentv1.TypeShell && p.fromFile.shell:
		return p.checkShell(payload)
	case slices.Contains(FileTypes, typ) && p.fromFile.files:
		return p.checkPaths(typ, payload)
	case typ == agentv1.TypePlaywright && p.fromFile.browser:
		return p.checkBrowser(payload)
	}
	return nil
}

func (p *Policy) checkShell(payload json.RawMessage) error {
	var sp struct {
		Cmd string `json:"cmd"`
	}
	if json.Unmarshal(payload, &sp) != nil || strings.TrimSpace(sp.Cmd) == "" {
		return nil //nolint:nilerr // an undecodable payload is refused by its executor
	}
	argv, err := executors.ParseCommandLine(sp.Cmd)
	if err != nil || len(argv) == 0 {
		return nil //nolint:nilerr // the executor refuses the construct with its own message
	}
	for _, pat := range p.patterns {
		if pat.Match(argv) {
			return nil
		}
	}
	return &Refusal{"policy.shell", fmt.Sprintf("command %s matches no allowed pattern (allowed: %s)", quote(truncate(sp.Cmd, 120)), list(p.Shell))}
}

// checkPaths checks the payload's path fields against the type's roots, lexically (the
// executor then confines every operation to its roots).
func (p *Policy) checkPaths(typ string, payload json.RawMessage) error {
	var fp struct {
		Path        string `json:"path"`
		ComposePath string `json:"compose_path"`
	}
	if json.Unmarshal(payload, &fp) != nil {
		return nil //nolint:nilerr // an undecodable payload is refused by its executor
	}
	roots := p.FileRoots[typ]
	for _, path := range []string{fp.Path, fp.ComposePath} {
		if path == "" || !filepath.IsAbs(path) {
			continue
		}
		clean := filepath.Clean(path)
		if !slices.ContainsFunc(roots, func(r string) bool { return clean != r && within(clean, r) }) {
			return &Refusal{"policy.files", fmt.Sprintf("%s path %s is outside its roots (allowed: %s)", typ, quote(truncate(path, 200)), list(roots))}
		}
	}
	return nil
}

func (p *Policy) checkBrowser(payload json.RawMessage) error {
	if p.BrowserHosts == nil {
		return nil
	}
	var bp struct {
		Flow struct {
			Steps []struct {
				Action string `json:"action"`
				URL    string `json:"url"`
			} `json:"steps"`
		} `json:"flow"`
	}
	if json.Unmarshal(payload, &bp) != nil {
		return nil //nolint:nilerr // an undecodable payload is refused by its executor
	}
	for i, st := range bp.Flow.Steps {
		if st.Action != "goto" {
			continue
		}
		u, err := url.Parse(st.URL)
		if err != nil {
			continue // the executor refuses it
		}
		if !hostAllowed(p.BrowserHosts, u.Hostname()) {
			return &Refusal{"policy.browser", fmt.Sprintf("step %d (goto) host %s is not allowed (allowed: %s)", i+1, quote(truncate(u.Hostname(), 100)), list(p.BrowserHosts))}
		}
	}
	return nil
}

func list(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	return strings.Join(v, ", ")
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
