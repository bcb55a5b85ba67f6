// Package fakedocker is a docker executable for the tests of what a real engine cannot show
// (the exact arguments the agent passes, odd output, a failing or hanging CLI), shared by the
// executors' unit tests and the binary's end-to-end tests. The compose behaviour itself is
// tested against a real engine (internal/testengine).
//
// The executable records every run except ps, inspect and events (which prints nothing and
// exits at once: the agent's Stack observer then watches again later), one line per run with
// the arguments separated by \x1f (Runs), and appends its environment to the file "env". Files in its
// directory steer it (Set):
//
//	ps             printed by `docker ps` (container ids, one per line); nothing when absent
//	inspect        printed by `docker inspect` (a JSON array); [] when absent
//	stdout         printed by every other run instead of "<subcommand> done"
//	fail-<sub>     makes the pull or up subcommand exit 3 with "cannot <sub>: no such image"
//	sleep          makes every other run hang for 30 s
//
// and a file named docker-fail in a run's --project-directory makes that run exit 3 with
// "pull access denied", so one fake serves several projects that behave differently.
package fakedocker

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const script = `#!/bin/sh
dir=%q
case "$1" in
ps) [ -f "$dir/ps" ] && cat "$dir/ps"; exit 0;;
inspect) if [ -f "$dir/inspect" ]; then cat "$dir/inspect"; else echo '[]'; fi; exit 0;;
events) exit 0;;
esac
printf '%%s\037' "$@" >> "$dir/argv"
printf '\n' >> "$dir/argv"
env >> "$dir/env"
sub=
pd=
prev=
for a in "$@"; do
	[ "$prev" = "--project-directory" ] && pd=$a
	prev=$a
	case "$a" in pull|up) [ -z "$sub" ] && sub=$a;; esac
done
if [ -f "$dir/stdout" ]; then cat "$dir/stdout"; fi
if [ -f "$dir/fail-$sub" ]; then echo "cannot $sub: no such image" >&2; exit 3; fi
if [ -n "$pd" ] && [ -f "$pd/docker-fail" ]; then echo "pull access denied" >&2; exit 3; fi
[ -f "$dir/sleep" ] && exec sleep 30
[ -f "$dir/stdout" ] || echo "$sub done"
`

// Docker is one fake docker executable and its control directory.
type Docker struct {
	// Dir holds the control files and the records.
	Dir string
	// Bin is the directory holding the executable "docker": put it first in PATH.
	Bin string
}

// New writes a fake docker into a temporary directory of t.
func New(t testing.TB) *Docker {
	t.Helper()
	dir := t.TempDir()
	d := &Docker{Dir: dir, Bin: filepath.Join(dir, "bin")}
	if err := os.MkdirAll(d.Bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Bin, "docker"), fmt.Appendf(nil, script, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// Runs returns the argument lists of the recorded runs so far, oldest first.
func (d *Docker) Runs(t testing.TB) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Dir, "argv"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var runs [][]string
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		runs = append(runs, strings.Split(strings.TrimSuffix(line, "\x1f"), "\x1f"))
	}
	return runs
}

// Env returns the environments of all recorded runs, one after another.
func (d *Docker) Env(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.Dir, "env"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// Set writes the control file name.
func (d *Docker) Set(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(d.Dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Running makes docker ps and inspect show one running container per service of project,
// started long ago, without a healthcheck: container "c-<service>" of image "<service>:1"
// (ID "sha256:img-<service>").
func (d *Docker) Running(t testing.TB, project string, services ...string) {
	t.Helper()
	var ids []string
	var infos []map[string]any
	for _, s := range services {
		ids = append(ids, "c-"+s)
		infos = append(infos, map[string]any{
			"Id": "c-" + s, "Image": "sha256:img-" + s, "RestartCount": 0,
			"State":      map[string]any{"Status": "running", "StartedAt": "2020-01-01T00:00:00Z"},
			"Config":     map[string]any{"Image": s + ":1", "Labels": map[string]string{"com.docker.compose.project": project, "com.docker.compose.service": s}},
			"HostConfig": map[string]any{"RestartPolicy": map[string]any{"Name": "unless-stopped"}},
		})
	}
	b, err := json.Marshal(infos)
	if err != nil {
		t.Fatal(err)
	}
	d.Set(t, "ps", strings.Join(ids, "\n")+"\n")
	d.Set(t, "inspect", string(b))
}
