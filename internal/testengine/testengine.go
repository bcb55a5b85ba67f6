// Package testengine finds the tests' Docker engine, prepared by hack/docker-engine.sh: from
// LETSBE_TEST_DOCKER_* (set by .ci/run), else from what `hack/docker-engine.sh --cached`
// prints (an engine prepared earlier). It is never part of the agent.
package testengine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Engine is the engine's docker CLI, DOCKER_HOST, DOCKER_CONFIG and its two test images.
type Engine struct {
	CLI, Host, Config, Image1, Image2 string
}

// Find returns the engine; repoRoot is the repository's root relative to the test's package
// directory ("../.."). The error says why there is none.
func Find(repoRoot string) (Engine, error) { return FindEnv(repoRoot, nil) }

// FindEnv is Find with the script run in environ (nil: the process's own), for a test binary
// that moved its cache directories (internal/testdirs) and so must ask with the environment
// it started with (testdirs.OriginalEnviron): the engine lives in the user's go build cache.
func FindEnv(repoRoot string, environ []string) (Engine, error) {
	vars := map[string]string{}
	for _, k := range []string{"LETSBE_TEST_DOCKER_CLI", "LETSBE_TEST_DOCKER_HOST", "LETSBE_TEST_DOCKER_CONFIG", "LETSBE_TEST_DOCKER_IMAGE", "LETSBE_TEST_DOCKER_IMAGE2"} {
		vars[k] = os.Getenv(k)
	}
	if vars["LETSBE_TEST_DOCKER_HOST"] == "" {
		cmd := exec.CommandContext(context.Background(), "bash", filepath.Join(repoRoot, "hack", "docker-engine.sh"), "--cached")
		cmd.Env = environ
		out, err := cmd.Output()
		if err != nil {
			return Engine{}, errors.New("LETSBE_TEST_DOCKER_HOST is not set and hack/docker-engine.sh --cached found no engine (run hack/docker-engine.sh as root, or .ci/run)")
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				vars[k] = v
			}
		}
	}
	e := Engine{CLI: vars["LETSBE_TEST_DOCKER_CLI"], Host: vars["LETSBE_TEST_DOCKER_HOST"], Config: vars["LETSBE_TEST_DOCKER_CONFIG"],
		Image1: vars["LETSBE_TEST_DOCKER_IMAGE"], Image2: vars["LETSBE_TEST_DOCKER_IMAGE2"]}
	if e.CLI == "" {
		e.CLI = "docker"
	}
	return e, nil
}
