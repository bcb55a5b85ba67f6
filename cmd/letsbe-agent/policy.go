package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/config"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"
)

const policyUsage = `usage:
  letsbe-agent policy show [flags of run]             print the effective policy and its sha256
  letsbe-agent policy check [flags of run] TASK.json|-  say whether the policy allows the task
                                                      (exit 0 allowed, 1 refused, 2 bad input)`

// runPolicy implements `letsbe-agent policy`: the same settings as `run` (flags, environment,
// AGENT_POLICY) give the same effective policy as the agent's.
func runPolicy(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, policyUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	var taskFile string
	switch sub {
	case "show":
	case "check":
		if len(args) == 0 || strings.HasPrefix(args[len(args)-1], "-") && args[len(args)-1] != "-" {
			fmt.Fprintln(stderr, "letsbe-agent policy check: want a task file (or - for standard input)")
			return 2
		}
		taskFile, args = args[len(args)-1], args[:len(args)-1]
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, policyUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "letsbe-agent policy: unknown command %q (want show or check)\n", sub)
		return 2
	}
	cfg, err := config.Load(args, config.LookupEnv, config.ModeDev, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent: %v\n", err)
		return 2
	}
	execs, err := buildExecutors(cfg, nil)
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent: %v\n", err)
		return 2
	}
	pol, err := effectivePolicy(cfg, executors.Types(execs))
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent: %v\n", err)
		return 2
	}
	if sub == "show" {
		b, _ := json.MarshalIndent(struct {
			SHA256 string `json:"sha256"`
			Policy any    `json:"policy"`
		}{pol.SHA256(), pol}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return 0
	}
	body, err := readTaskFile(os.Stdin, taskFile)
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent policy check: %v\n", err)
		return 2
	}
	wt, err := wire.DecodeTask(body)
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent policy check: %v\n", err)
		return 2
	}
	task := &agentv1.Task{Spec: agentv1.TaskSpec{Type: wt.Type, Payload: &runtime.RawExtension{Raw: wt.Payload}}}
	task.Name = wt.ID
	if err := pol.Check(task); err != nil {
		fmt.Fprintf(stdout, "refused: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "allowed (policy sha256 %s)\n", pol.SHA256())
	return 0
}
