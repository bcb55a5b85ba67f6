package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// measureFloor builds hack/bench/floor as the agent is built (static, stripped) and returns its
// anonymous memory once it is ready: the agent's dependencies initialized, nothing started.
func measureFloor(work string) (memory, error) {
	bin := filepath.Join(work, "floor")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./hack/bench/floor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return memory{}, fmt.Errorf("build hack/bench/floor: %w", err)
	}
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return memory{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return memory{}, err
	}
	if err := cmd.Start(); err != nil {
		return memory{}, err
	}
	defer func() {
		stdin.Close() // it exits once its standard input closes
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		return memory{}, fmt.Errorf("hack/bench/floor did not get ready (%q): %v", line, err)
	}
	return readMemory(cmd.Process.Pid)
}
