package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"time"

	"github.com/letsbe/sysadmin-agent/executors"
)

// shellOverhead compares the SHELL executor running `true` with a bare os/exec of `true`.
type shellOverhead struct {
	Runs             int
	Shell, Bare      time.Duration // medians per run
	PairedDifference time.Duration // median of (shell - bare) over adjacent pairs
}

// measureShell alternates the two, run by run, so both see the same machine noise.
func measureShell(ctx context.Context, runs int) (shellOverhead, error) {
	res := shellOverhead{Runs: runs}
	shell, err := executors.NewShell(executors.ShellConfig{AllowedCommands: []string{"true"}})
	if err != nil {
		return res, err
	}
	payload := json.RawMessage(`{"cmd":"true"}`)
	runShell := func() (time.Duration, error) {
		t := time.Now()
		_, err := shell.Execute(ctx, payload)
		return time.Since(t), err
	}
	runBare := func() (time.Duration, error) {
		t := time.Now()
		err := exec.CommandContext(ctx, "true").Run()
		return time.Since(t), err
	}
	const warmup = 20
	var sh, ba, diff []float64
	for i := range warmup + runs {
		s, err := runShell()
		if err != nil {
			return res, fmt.Errorf("SHELL true: %w", err)
		}
		b, err := runBare()
		if err != nil {
			return res, fmt.Errorf("exec true: %w", err)
		}
		if i >= warmup {
			sh, ba, diff = append(sh, float64(s)), append(ba, float64(b)), append(diff, float64(s-b))
		}
	}
	res.Shell, res.Bare = time.Duration(median(sh)), time.Duration(median(ba))
	res.PairedDifference = time.Duration(median(diff))
	return res, nil
}
