package config_test

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// packageVersion is the VERSION the packaging test builds with, and pkgVersion the package
// version hack/package.sh makes of it.
const (
	packageVersion = "v1.2.3-4-gabcdef0"
	pkgVersion     = "1.2.3+4.gabcdef0"
)

// needTool returns the path of a tool the packaging test needs. Without it the test skips
// loudly, except in CI (CI set), which must have it: .ci/run installs it.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; CI must have it (apt-get install %s)", name, pkg)
		}
		t.Skipf("!!!!!!!! %s is not installed (apt-get install %s): the packages are NOT checked", name, pkg)
	}
	return path
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// TestPackages runs `make package` (nfpm, pinned in the Makefile) into a temporary directory
// and inspects what it built: the .deb with dpkg-deb (files, modes, owners, conffiles,
// maintainer scripts, control fields, the unit's ExecStart, systemd-analyze verify, the binary's
// version), the .rpm with rpm when installed, the archive with archive/tar, and SHA256SUMS.
func TestPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and the packages: not in -short")
	}
	t.Parallel()
	dpkgDeb := needTool(t, "dpkg-deb", "dpkg")
	makeBin := needTool(t, "make", "make")
	dist := t.TempDir()
	out := run(t, makeBin, "-C", repoRoot, "package", "DIST="+dist, "VERSION="+packageVersion, "COMMIT=0123456789abcdef")
	t.Logf("make package:\n%s", out)

	arch := strings.TrimSpace(run(t, "go", "env", "GOARCH"))
	deb := filepath.Join(dist, "letsbe-agent_"+pkgVersion+"-1_"+arch+".deb")
	archive := filepath.Join(dist, "letsbe-agent_"+pkgVersion+"_linux_"+arch+".tar.gz")
	rpms, _ := filepath.Glob(filepath.Join(dist, "letsbe-agent-"+pkgVersion+"-1.*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("want one .rpm in %s, got %v", dist, rpms)
	}

	t.Run("SHA256SUMS", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for line := range strings.Lines(string(b)) {
			sum, name, ok := strings.Cut(strings.TrimSpace(line), "  ")
			if !ok {
				t.Fatalf("SHA256SUMS line %q", line)
			}
			names = append(names, name)
			f, err := os.ReadFile(filepath.Join(dist, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := sha256.Sum256(f); hex.EncodeToString(got[:]) != sum {
				t.Errorf("%s: sha256 %x, SHA256SUMS says %s", name, got, sum)
			}
		}
		want := []string{filepath.Base(deb), filepath.Base(archive), filepath.Base(rpms[0])}
		slices.Sort(want)
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("SHA256SUMS lists (-want +got):\n%s", diff)
		}
	})

	t.Run("deb", func(t *testing.T) {
		// dpkg-deb -c: mode, owner/group, size, date, time, path.
		got := map[string]string{}
		for line := range strings.Lines(run(t, dpkgDeb, "-c", deb)) {
			f := strings.Fields(line)
			if len(f) < 6 {
				t.Fatalf("dpkg-deb -c line %q", line)
			}
			path := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
			if strings.HasPrefix(f[0], "d") && !slices.Contains([]string{"/etc/letsbe-agent", "/var/lib/letsbe-agent"}, path) {
				continue // the parents: /usr, /usr/bin, ...
			}
			got[path] = f[0] + " " + f[1]
		}
		want := map[string]string{
			"/usr/bin/letsbe-agent":                              "-rwxr-xr-x root/root",
			"/usr/lib/systemd/system/letsbe-agent.service":       "-rw-r--r-- root/root",
			"/etc/letsbe-agent":                                  "drwx------ root/root",
			"/etc/letsbe-agent/agent.env":                        "-rw------- root/root",
			"/var/lib/letsbe-agent":                              "drwx------ root/root",
			"/usr/share/doc/letsbe-agent/README.md":              "-rw-r--r-- root/root",
			"/usr/share/doc/letsbe-agent/operating.md":           "-rw-r--r-- root/root",
			"/usr/share/doc/letsbe-agent/prometheus-alerts.yaml": "-rw-r--r-- root/root",
			"/usr/share/doc/letsbe-agent/grafana-dashboard.json": "-rw-r--r-- root/root",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("dpkg-deb -c (-want +got):\n%s", diff)
		}

		fields := map[string]string{}
		for _, k := range []string{"Package", "Version", "Architecture", "Section", "Maintainer"} {
			fields[k] = strings.TrimSpace(run(t, dpkgDeb, "-f", deb, k))
		}
		if diff := cmp.Diff(map[string]string{
			"Package": "letsbe-agent", "Version": pkgVersion + "-1", "Architecture": arch,
			"Section": "admin", "Maintainer": fields["Maintainer"],
		}, fields); diff != "" || fields["Maintainer"] == "" {
			t.Errorf("control fields (-want +got):\n%s", diff)
		}

		ctrl := t.TempDir()
		run(t, dpkgDeb, "-e", deb, ctrl)
		if b, err := os.ReadFile(filepath.Join(ctrl, "conffiles")); err != nil || strings.TrimSpace(string(b)) != "/etc/letsbe-agent/agent.env" {
			t.Errorf("conffiles = %q, %v; want /etc/letsbe-agent/agent.env (kept on upgrade)", b, err)
		}
		for script, src := range map[string]string{"postinst": "postinstall.sh", "prerm": "preremove.sh", "postrm": "postremove.sh"} {
			if !sameContent(t, filepath.Join(ctrl, script), filepath.Join(repoRoot, "config/packaging", src)) {
				t.Errorf("%s differs from config/packaging/%s", script, src)
			}
		}

		root := t.TempDir()
		run(t, dpkgDeb, "-x", deb, root)
		unitFile, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/letsbe-agent.service"))
		if err != nil {
			t.Fatal(err)
		}
		if got := parseUnit(t, unitFile).last("Service.ExecStart"); got != "/usr/bin/letsbe-agent run" {
			t.Errorf("packaged unit: ExecStart = %q, want /usr/bin/letsbe-agent run", got)
		}
		// Apart from the binary's path, the packaged unit is config/systemd/letsbe-agent.service.
		source := readRepoFile(t, "config/systemd/letsbe-agent.service")
		if diff := cmp.Diff(strings.ReplaceAll(string(source), "/usr/local/bin/", "/usr/bin/"), string(unitFile)); diff != "" {
			t.Errorf("packaged unit differs from config/systemd/letsbe-agent.service beyond ExecStart (-want +got):\n%s", diff)
		}
		if !sameContent(t, filepath.Join(root, "etc/letsbe-agent/agent.env"), filepath.Join(repoRoot, "config/systemd/agent.env")) {
			t.Error("packaged agent.env differs from config/systemd/agent.env")
		}
		verifyUnit(t, unitFile, root)
		if v := run(t, filepath.Join(root, "usr/bin/letsbe-agent"), "version"); !strings.HasPrefix(v, "letsbe-agent "+packageVersion+" (commit 0123456789abcdef,") {
			t.Errorf("packaged binary: version = %q", v)
		}
	})

	t.Run("rpm", func(t *testing.T) {
		rpm := needTool(t, "rpm", "rpm")
		// --dump: path size mtime digest mode owner group isconfig isdoc rdev symlink.
		got := map[string]string{}
		for line := range strings.Lines(run(t, rpm, "-qp", "--dump", rpms[0])) {
			f := strings.Fields(line)
			if len(f) < 9 {
				t.Fatalf("rpm --dump line %q", line)
			}
			mode := f[4][len(f[4])-4:]
			got[f[0]] = mode + " " + f[5] + "/" + f[6] + " config=" + f[7]
		}
		want := map[string]string{
			"/usr/bin/letsbe-agent":                              "0755 root/root config=0",
			"/usr/lib/systemd/system/letsbe-agent.service":       "0644 root/root config=0",
			"/etc/letsbe-agent":                                  "0700 root/root config=0",
			"/etc/letsbe-agent/agent.env":                        "0600 root/root config=1",
			"/var/lib/letsbe-agent":                              "0700 root/root config=0",
			"/usr/share/doc/letsbe-agent/README.md":              "0644 root/root config=0",
			"/usr/share/doc/letsbe-agent/operating.md":           "0644 root/root config=0",
			"/usr/share/doc/letsbe-agent/prometheus-alerts.yaml": "0644 root/root config=0",
			"/usr/share/doc/letsbe-agent/grafana-dashboard.json": "0644 root/root config=0",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("rpm --dump (-want +got):\n%s", diff)
		}
		if s := run(t, rpm, "-qp", "--scripts", rpms[0]); !strings.Contains(s, "postinstall scriptlet") || !strings.Contains(s, "preuninstall scriptlet") {
			t.Errorf("rpm scripts:\n%s", s)
		}
	})

	t.Run("archive", func(t *testing.T) {
		f, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		zr, err := gzip.NewReader(bufio.NewReader(f))
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		dir := "letsbe-agent_" + pkgVersion + "_linux_" + arch + "/"
		got := map[string]string{}
		var unitFile []byte
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[h.Name] = os.FileMode(h.Mode).String() + " " + h.Uname + "/" + h.Gname
			if h.Name == dir+"letsbe-agent.service" {
				if unitFile, err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := map[string]string{
			dir:                          "-rwxr-xr-x /",
			dir + "letsbe-agent":         "-rwxr-xr-x /",
			dir + "letsbe-agent.service": "-rw-r--r-- /",
			dir + "agent.env.example":    "-rw------- /",
			dir + "README.md":            "-rw-r--r-- /",
			dir + "operating.md":         "-rw-r--r-- /",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("archive entries (-want +got):\n%s", diff)
		}
		// The archive's unit is for a binary installed by hand in /usr/local/bin.
		if got := parseUnit(t, unitFile).last("Service.ExecStart"); got != "/usr/local/bin/letsbe-agent run" {
			t.Errorf("archive unit: ExecStart = %q", got)
		}
	})
}

var pkgVersionChars = regexp.MustCompile(`^[0-9A-Za-z.+~]+$`)

// TestPackageVersions checks the package versions hack/package.sh makes of VERSION: dpkg and
// rpm both take them, and a release sorts after the commits before it.
func TestPackageVersions(t *testing.T) {
	t.Parallel()
	for version, want := range map[string]string{
		"v1.2.3":            "1.2.3",
		"1.2.3":             "1.2.3",
		"v1.2.3-4-gabcdef0": "1.2.3+4.gabcdef0",
		"629ccab":           "0.0.0+git.629ccab",
		"629ccab-dirty":     "0.0.0+git.629ccab.dirty",
		"0.0.0-dev":         "0.0.0+dev",
	} {
		cmd := exec.CommandContext(t.Context(), "bash", "-c", `source <(sed -n '/^v=\${VERSION#v}/,/^export PKG_VERSION/p' hack/package.sh); echo "$PKG_VERSION"`)
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "VERSION="+version)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", version, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want || !pkgVersionChars.MatchString(got) {
			t.Errorf("package version of %q = %q, want %q", version, got, want)
		}
	}
}
