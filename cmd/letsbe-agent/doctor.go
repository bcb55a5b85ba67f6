package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/spf13/cobra"

	"github.com/letsbe/sysadmin-agent/api/store/journal"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/config"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/executors/browser"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
)

// Levels of a doctor check, worst last.
const (
	checkOK   = "OK"
	checkWarn = "WARN"
	checkFail = "FAIL"
)

// doctorProbeAgentID is the agent id of doctor's token probe: a heartbeat for an agent no
// orchestrator knows, answered 404 when the token is accepted and 401 when it is refused.
// Nothing is registered and no task is taken.
const doctorProbeAgentID = "letsbe-doctor-probe"

// Thresholds of the checks.
const (
	doctorTimeout      = 10 * time.Second
	minFreeBytesFail   = 64 << 20
	minFreeBytesWarn   = 512 << 20
	certExpiryWarn     = 14 * 24 * time.Hour
	clockSkewWarn      = 30 * time.Second
	clockSkewFail      = 5 * time.Minute
	journalLockTimeout = 200 * time.Millisecond
)

// check is one line of doctor's report.
type check struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// doctor runs the checks and collects their lines.
type doctor struct {
	cfg    *config.Config
	flags  *config.Flags
	checks []check
}

func (d *doctor) add(status, name, msg, hint string) {
	d.checks = append(d.checks, check{Name: name, Status: status, Message: msg, Hint: hint})
}
func (d *doctor) ok(name, msg string)         { d.add(checkOK, name, msg, "") }
func (d *doctor) warn(name, msg, hint string) { d.add(checkWarn, name, msg, hint) }
func (d *doctor) fail(name, msg, hint string) { d.add(checkFail, name, msg, hint) }

// worst is the worst status of the checks.
func (d *doctor) worst() string {
	w := checkOK
	for _, c := range d.checks {
		if c.Status == checkFail {
			return checkFail
		}
		if c.Status == checkWarn {
			w = checkWarn
		}
	}
	return w
}

func newDoctorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check this host and the configuration before (or while) running the agent",
		Long: `Check this host and the configuration the agent would run with: the settings, the state
directory (owner, mode, free space, identity, journal — read-only, and not opened while an
agent holds it), the orchestrator (DNS, TCP, TLS chain and expiry, clock skew, whether the
token is accepted — without registering or taking a task), docker and its compose plugin,
Chromium for PLAYWRIGHT tasks, and the task policy.

One line per check: OK, WARN or FAIL, with a hint. Exit codes: 0 all OK, 1 a warning, 2 a
failure.`,
		Args: cobra.NoArgs,
	}
	f := bindAgentFlags(cmd)
	asJSON := cmd.Flags().Bool("json", false, "print the checks as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		d := &doctor{flags: f.flags}
		d.run(cmd.Context())
		if *asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			if err := enc.Encode(struct {
				Status string  `json:"status"`
				Checks []check `json:"checks"`
			}{d.worst(), d.checks}); err != nil {
				return err
			}
		} else {
			d.print(cmd.OutOrStdout())
		}
		switch d.worst() {
		case checkFail:
			return &exitError{code: exitSetup}
		case checkWarn:
			return failed()
		}
		return nil
	}
	return cmd
}

func (d *doctor) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	n := map[string]int{}
	for _, c := range d.checks {
		n[c.Status]++
		line := c.Message
		if c.Hint != "" {
			line += " — hint: " + c.Hint
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.Name, line)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\n%d OK, %d WARN, %d FAIL\n", n[checkOK], n[checkWarn], n[checkFail])
}

// run runs every check that the configuration allows.
func (d *doctor) run(ctx context.Context) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !d.checkConfig() {
		return
	}
	execs := d.checkExecutors()
	if d.cfg.Store == config.StoreMemory {
		d.checkStateDir()
	} else {
		d.ok("state-dir", "kubernetes store: Tasks live on the API server; the state directory only holds the identity")
	}
	if d.cfg.OrchestratorURL != "" && d.cfg.Token != "" {
		d.checkOrchestrator(ctx)
	}
	if execs[agentv1.TypeDockerReload] != nil {
		d.checkDocker(ctx)
	}
	if pw, ok := execs[agentv1.TypePlaywright].(*browser.Playwright); ok {
		d.checkChromium(ctx, pw)
	}
	d.checkPolicy(execs)
}

func (d *doctor) checkConfig() bool {
	cfg, err := d.flags.Load(config.LookupEnv, config.ModeDev)
	if err != nil {
		d.fail("config", err.Error(), "fix the setting named; letsbe-agent run --help lists them")
		return false
	}
	d.cfg = cfg
	if err := cfg.Validate(config.ModeRun); err != nil {
		d.fail("config", err.Error(), "set it in the environment file (/etc/letsbe-agent/agent.env) or as a flag")
	} else {
		d.ok("config", fmt.Sprintf("orchestrator %s, store %s, state dir %s, %d tasks at once",
			cfg.OrchestratorURL, cfg.Store, cfg.StateDir, cfg.MaxConcurrentTasks))
	}
	if d.flags.Changed("token") {
		d.warn("config.token", "the token is given on the command line, where every user of this host sees it (ps)",
			"set AGENT_TOKEN in the environment file instead")
	}
	return true
}

func (d *doctor) checkExecutors() map[string]executors.Executor {
	execs, err := buildExecutors(d.cfg, nil)
	if err != nil {
		d.fail("executors", err.Error(), "fix the setting named")
		return nil
	}
	types := make([]string, 0, len(execs))
	for t := range execs {
		types = append(types, t)
	}
	slices.Sort(types)
	d.ok("executors", "task types "+strings.Join(types, ", "))
	return execs
}

func (d *doctor) checkStateDir() {
	dir := d.cfg.StateDir
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.warn("state-dir", dir+" does not exist yet", "the agent creates it (mode 0700) at start; the package creates it at install")
		return
	case err != nil:
		d.fail("state-dir", err.Error(), "the agent must be able to read and write AGENT_STATE_DIR")
		return
	case !fi.IsDir():
		d.fail("state-dir", dir+" is not a directory", "point AGENT_STATE_DIR at a directory")
		return
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case st != nil && int(st.Uid) != os.Geteuid():
		d.warn("state-dir", fmt.Sprintf("%s is owned by uid %d; this process runs as uid %d", dir, st.Uid, os.Geteuid()),
			"run doctor as the agent's user (root), or chown the directory to it")
	case fi.Mode().Perm()&0o077 != 0:
		d.warn("state-dir", fmt.Sprintf("%s has mode %04o: other users can read the identity and the journal", dir, fi.Mode().Perm()),
			"chmod 0700 "+dir+" (the agent also does at its next registration)")
	default:
		d.ok("state-dir", fmt.Sprintf("%s, mode %04o, owner uid %d", dir, fi.Mode().Perm(), os.Geteuid()))
	}

	var sfs syscall.Statfs_t
	if err := syscall.Statfs(dir, &sfs); err != nil {
		d.warn("state-dir.free", err.Error(), "")
	} else {
		free := sfs.Bavail * uint64(sfs.Bsize)
		msg := fmt.Sprintf("%s free", humanBytes(free))
		switch {
		case free < minFreeBytesFail:
			d.fail("state-dir.free", msg, "free space on the file system of "+dir+": the journal cannot write")
		case free < minFreeBytesWarn:
			d.warn("state-dir.free", msg, "free space on the file system of "+dir)
		default:
			d.ok("state-dir.free", msg)
		}
	}

	id, err := orchestratorsync.LoadIdentity(dir)
	switch {
	case err != nil:
		d.warn("identity", err.Error(), "the agent registers afresh (a new agent id) when its identity cannot be read")
	case id.AgentID == "":
		d.ok("identity", "not registered yet: the agent registers at its first start")
	default:
		d.ok("identity", "registered as agent "+id.AgentID)
	}

	n, err := journal.Inspect(dir, journalLockTimeout)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		d.ok("journal", "no journal yet: the agent creates it at its first start")
	case errors.Is(err, journal.ErrInUse):
		d.ok("journal", "in use by the running agent (not opened); letsbe-agent status shows its tasks")
	case err != nil:
		d.fail("journal", err.Error(), "at start the agent moves an unreadable journal aside (journal.db.corrupt-*) and starts empty: check the orchestrator for the tasks it held")
	default:
		d.ok("journal", fmt.Sprintf("readable, %d tasks held (unfinished or not yet reported)", n))
	}
}

func (d *doctor) checkOrchestrator(ctx context.Context) {
	u, err := url.Parse(d.cfg.OrchestratorURL)
	if err != nil {
		d.fail("orchestrator", err.Error(), "fix ORCHESTRATOR_URL")
		return
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()

	if net.ParseIP(host) == nil {
		addrs, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil {
			d.fail("orchestrator.dns", err.Error(), "check the host name in ORCHESTRATOR_URL and /etc/resolv.conf")
			return
		}
		d.ok("orchestrator.dns", host+" is "+strings.Join(addrs, ", "))
	}

	addr := net.JoinHostPort(host, port)
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		d.fail("orchestrator.tcp", err.Error(), "check the port in ORCHESTRATOR_URL and any firewall between this host and the orchestrator")
		return
	}
	d.ok("orchestrator.tcp", "connected to "+conn.RemoteAddr().String())
	if u.Scheme == "https" {
		d.checkTLS(ctx, conn, host)
	} else {
		_ = conn.Close()
		if !isLoopback(host) {
			d.warn("orchestrator.tls", "plain http: the token and the tasks cross the network unencrypted", "use an https ORCHESTRATOR_URL")
		}
	}
	d.checkToken(ctx)
}

func (d *doctor) checkTLS(ctx context.Context, conn net.Conn, host string) {
	tc := tls.Client(conn, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
	defer func() { _ = tc.Close() }()
	if err := tc.HandshakeContext(ctx); err != nil {
		hint := "the orchestrator's certificate must chain to a CA this host trusts (/etc/ssl/certs; SSL_CERT_FILE)"
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
			hint = "the orchestrator must speak TLS 1.2 or later on this port"
		}
		d.fail("orchestrator.tls", err.Error(), hint)
		return
	}
	cs := tc.ConnectionState()
	leaf := cs.PeerCertificates[0]
	left := time.Until(leaf.NotAfter)
	msg := fmt.Sprintf("%s, certificate for %s issued by %s, expires %s (in %d days)",
		tls.VersionName(cs.Version), certNames(leaf), leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly), int(left.Hours()/24))
	if left < certExpiryWarn {
		d.warn("orchestrator.tls", msg, "the orchestrator's certificate is about to expire: the agent stops reaching it then")
		return
	}
	d.ok("orchestrator.tls", msg)
}

// checkToken sends a heartbeat for an agent no orchestrator knows: 404 means the token is
// accepted, 401 that it is refused. It also compares the clocks with the answer's Date.
func (d *doctor) checkToken(ctx context.Context) {
	rec := &dateRecorder{next: http.DefaultTransport}
	client, err := wire.NewClient(wire.Config{
		BaseURL: d.cfg.OrchestratorURL, Token: d.cfg.Token, UserAgent: "letsbe-agent-doctor/" + version, Transport: rec,
	})
	if err != nil {
		d.fail("orchestrator.token", err.Error(), "fix ORCHESTRATOR_URL")
		return
	}
	_, err = client.Heartbeat(ctx, doctorProbeAgentID, wire.HeartbeatRequest{Version: version})
	switch {
	case err == nil || wire.IsNotFound(err):
		d.ok("orchestrator.token", "accepted (a heartbeat for an unknown agent id answered 404; nothing was registered)")
	case wire.IsUnauthorized(err):
		d.fail("orchestrator.token", "refused (401)", "AGENT_TOKEN must be the enrollment token the orchestrator issued for this host")
	default:
		d.fail("orchestrator.token", err.Error(), "the orchestrator answered, but not as contract v1 says: check the path of ORCHESTRATOR_URL (e.g. https://host/api/v1)")
	}
	skew, ok := rec.skew()
	if !ok {
		d.warn("orchestrator.clock", "the orchestrator sent no Date header", "")
		return
	}
	msg := fmt.Sprintf("this host's clock is %s %s the orchestrator's", skew.Abs().Round(time.Second), map[bool]string{true: "ahead of", false: "behind"}[skew > 0])
	switch {
	case skew.Abs() >= clockSkewFail:
		d.fail("orchestrator.clock", msg, "synchronise the clock (timedatectl set-ntp true): task times and certificate checks depend on it")
	case skew.Abs() >= clockSkewWarn:
		d.warn("orchestrator.clock", msg, "synchronise the clock (timedatectl set-ntp true)")
	default:
		d.ok("orchestrator.clock", fmt.Sprintf("within %s of the orchestrator's", clockSkewWarn))
	}
}

// dateRecorder remembers the Date of the last answer and when it came.
type dateRecorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	date string
	// sent, received bracket the request, so the skew is measured against their midpoint.
	sent, received time.Time
}

func (r *dateRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.date, r.sent, r.received = resp.Header.Get("Date"), sent, time.Now()
		r.mu.Unlock()
	}
	return resp, err
}

// skew is local time minus the orchestrator's; Date has a resolution of one second.
func (r *dateRecorder) skew() (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	theirs, err := http.ParseTime(r.date)
	if err != nil {
		return 0, false
	}
	mid := r.sent.Add(r.received.Sub(r.sent) / 2)
	skew := mid.Sub(theirs.Add(500 * time.Millisecond))
	if skew.Abs() < time.Second {
		skew = 0
	}
	return skew, true
}

func (d *doctor) checkDocker(ctx context.Context) {
	proc := executors.NewProcess(executors.ProcessConfig{MaxOutputBytes: 4096, KillGrace: time.Second})
	run := func(argv ...string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
		defer cancel()
		res, err := proc.Run(ctx, executors.Command{Argv: argv})
		if err != nil {
			if msg := strings.TrimSpace(res.Stderr); msg != "" {
				return "", errors.New(firstLine(msg))
			}
			return "", err
		}
		return strings.TrimSpace(res.Stdout), nil
	}
	docker := d.cfg.DockerBinary
	client, err := run(docker, "--version")
	if err != nil {
		d.warn("docker", fmt.Sprintf("%s: %v", docker, err), "DOCKER_RELOAD tasks fail without the docker CLI: install docker-ce-cli (or docker.io), or set AGENT_DOCKER_BINARY")
		return
	}
	if server, err := run(docker, "version", "--format", "{{.Server.Version}}"); err != nil {
		d.warn("docker", fmt.Sprintf("CLI %s, but the engine does not answer: %v", client, err), "start the docker service (systemctl start docker); DOCKER_RELOAD tasks fail until then")
	} else {
		d.ok("docker", fmt.Sprintf("CLI %s, engine %s", client, server))
	}
	if v, err := run(docker, "compose", "version", "--short"); err != nil || v == "" {
		d.warn("docker.compose", fmt.Sprintf("no compose plugin (%s compose version: %v)", docker, err), "install docker-compose-plugin: DOCKER_RELOAD runs `docker compose`")
	} else {
		d.ok("docker.compose", "compose plugin "+v)
	}
}

func (d *doctor) checkChromium(ctx context.Context, pw *browser.Playwright) {
	path, err := pw.Chromium()
	if err != nil {
		d.warn("chromium", err.Error(), "PLAYWRIGHT tasks fail without a browser: apt-get install chromium, or set AGENT_CHROMIUM_PATH")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, doctorTimeout)
	defer cancel()
	proc := executors.NewProcess(executors.ProcessConfig{MaxOutputBytes: 4096, KillGrace: time.Second})
	res, err := proc.Run(ctx, executors.Command{Argv: []string{path, "--version"}})
	if err != nil {
		d.warn("chromium", fmt.Sprintf("%s --version: %v", path, err), "PLAYWRIGHT tasks need a working Chromium")
		return
	}
	d.ok("chromium", fmt.Sprintf("%s (%s)", lastLine(res.Stdout), path))
}

// checkPolicy builds the effective policy as the agent does (internal/policy, through
// effectivePolicy): the settings narrowed by the AGENT_POLICY file.
func (d *doctor) checkPolicy(execs map[string]executors.Executor) {
	if execs == nil {
		return // the executors check failed: the task types are not known
	}
	pol, err := effectivePolicy(d.cfg, executors.Types(execs))
	if err != nil {
		d.fail("policy", err.Error(), "fix the file AGENT_POLICY names (docs/policy.md); the agent does not start with it")
		return
	}
	if len(pol.Types) == 0 {
		d.warn("policy", pol.Source+": no task type may run", "list the task types under types: in the policy file (letsbe-agent policy show)")
		return
	}
	d.ok("policy", fmt.Sprintf("%s: %d of %d task types, %d SHELL command patterns, sha256 %s (letsbe-agent policy show)",
		pol.Source, len(pol.Types), len(execs), len(pol.Shell), pol.SHA256()[:12]))
}

func certNames(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return strings.Join(c.DNSNames, ", ")
	}
	if len(c.IPAddresses) > 0 {
		ips := make([]string, len(c.IPAddresses))
		for i, ip := range c.IPAddresses {
			ips[i] = ip.String()
		}
		return strings.Join(ips, ", ")
	}
	return c.Subject.CommonName
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}
