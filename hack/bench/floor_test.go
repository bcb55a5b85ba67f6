package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestFloorImportsWhatTheAgentImports: hack/bench/floor stands for the agent's dependencies
// only while it imports every package that cmd/letsbe-agent imports beyond the standard library.
func TestFloorImportsWhatTheAgentImports(t *testing.T) {
	t.Parallel()
	imports := func(pkg string) map[string]bool {
		out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		set := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") { // not the standard library
				set[p] = true
			}
		}
		return set
	}
	agent, floor := imports("../../cmd/letsbe-agent"), imports("./floor")
	if len(agent) == 0 {
		t.Fatal("the agent imports nothing beyond the standard library?")
	}
	for p := range agent {
		if !floor[p] {
			t.Errorf("hack/bench/floor does not import %s, which cmd/letsbe-agent imports", p)
		}
	}
}
