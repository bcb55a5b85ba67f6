package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Issue 16 set its CPU target (150 µs per ECHO task) on a machine where the agent it found cost
// ≈370 µs: on another machine the same code costs another figure, so the bench also measures
// that agent, built from the commit before any issue 16 change, in the same run, and reports
// the agent's CPU per task as a ratio of it, as the other targets are.
const (
	filedCommit      = "3cd86f2" // main before the first issue 16 change
	filedCPUPerTask  = 370 * time.Microsecond
	targetFiledRatio = float64(targetCPUPerTask) / float64(filedCPUPerTask) // 0.41
)

// buildFiled builds the agent at commit into dir/letsbe-agent-<commit> with buildAgent, from
// the repository that holds the working directory (git archive of the whole tree: the
// repository is not touched).
func buildFiled(dir, commit string) (string, error) {
	src := filepath.Join(dir, "src-"+commit)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse --show-toplevel: %w", err)
	}
	// From the top: in a subdirectory, git archive takes only that subdirectory.
	archive := exec.Command("git", "archive", "--format=tar", commit)
	archive.Dir = strings.TrimSpace(string(top))
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	extract.Stdin = pipe
	var archiveErr, extractErr strings.Builder
	archive.Stderr, extract.Stderr = &archiveErr, &extractErr
	if err := extract.Start(); err != nil {
		return "", fmt.Errorf("tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		_ = extract.Wait()
		return "", fmt.Errorf("git archive %s: %w (%s)", commit, err, strings.TrimSpace(archiveErr.String()))
	}
	if err := extract.Wait(); err != nil {
		return "", fmt.Errorf("tar: %w (%s)", err, strings.TrimSpace(extractErr.String()))
	}
	out := filepath.Join(dir, "letsbe-agent-"+commit)
	if err := buildAgent(out, src); err != nil {
		return "", fmt.Errorf("at %s: %w", commit, err)
	}
	return out, os.RemoveAll(src)
}
