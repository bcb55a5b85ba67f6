package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultAllowedCommands is the SHELL allowlist when AGENT_ALLOWED_COMMANDS is not set: programs
// for looking at a server. Note that docker and systemctl can also change it; narrow the list
// where that matters.
var DefaultAllowedCommands = []string{
	"cat", "date", "df", "docker", "du", "free", "hostname", "id", "journalctl", "ls",
	"ps", "systemctl", "uname", "uptime", "whoami",
}

// Config is the agent's whole configuration.
type Config struct {
	OrchestratorURL    string
	Token              string
	StateDir           string
	AllowedCommands    []string
	FileRoots          []string
	MaxFileBytes       int64
	MaxReportBytes     int64
	MaxTaskBytes       int64
	DockerBinary       string
	HeartbeatInterval  time.Duration
	PollInterval       time.Duration
	MaxConcurrentTasks int
	TaskTimeout        time.Duration
	ShutdownGrace      time.Duration
	BackoffBase        time.Duration
	LogFormat          string
	LogLevel           string
	Labels             map[string]string
	HTTPAddr           string
	// HTTPAllowRemote lets HTTPAddr be a non-loopback address without HTTPToken.
	HTTPAllowRemote bool
	// HTTPToken, when set, is required (bearer) for everything on the listener but /healthz.
	HTTPToken string

	// PLAYWRIGHT tasks: an empty ChromiumPath means chromium on PATH, empty
	// BrowserAllowedHosts any host.
	ChromiumPath        string
	BrowserAllowedHosts []string
	MaxBrowserTasks     int

	// Live progress of running tasks (when the orchestrator asks for it): at most one
	// progress report per task per ProgressInterval, each within ProgressMaxBytes.
	ProgressInterval time.Duration
	ProgressMaxBytes int64

	// Signed tasks: TaskKeys is the JWKS file of trusted keys ("" checks no signatures).
	TaskKeys           string
	AllowUnsignedTasks bool
	RequireTaskExpiry  bool
	// Policy is the AGENT_POLICY file ("" for the settings alone).
	Policy string

	// Cluster mode (Store "kubernetes"): Tasks live in Namespace on the API server; with
	// LeaderElection, one replica (the holder of a Lease) runs them.
	Store              string
	Namespace          string
	LeaderElection     bool
	LeaseDuration      time.Duration
	LeaseRenewDeadline time.Duration
	LeaseRetryPeriod   time.Duration
	TaskRetention      time.Duration
	TaskDedupWindow    time.Duration

	// Compose executors: docker's endpoint and CLI config (empty: docker's defaults), the
	// compose policy (BindRoots empty: the file roots) and the revisions kept per project.
	DockerHost                 string
	DockerConfig               string
	ComposeAllowPrivileged     bool
	ComposeAllowHostNamespaces bool
	ComposeAllowedCapabilities []string
	ComposeAllowDevices        bool
	ComposeBindRoots           []string
	StackRevisions             int
	// Stacks: how often each deployed project is observed again, and whether degraded or
	// drifted services are healed.
	StackRecheckInterval time.Duration
	StackSelfHeal        bool
}

// setting binds one Config field to a flag and an environment variable.
type setting struct {
	flag, env, def, usage string
	secret                bool
	// allowEmpty: an empty value (say, AGENT_HTTP_ADDR=) is a value, not "unset".
	allowEmpty bool
	// kind is the type --help shows (duration, size, list, map, bool, int, path, program,
	// string); empty
	// derives it from def and usage.
	kind  string
	apply func(c *Config, v string) error
}

var settings = []setting{
	{flag: "orchestrator-url", env: "ORCHESTRATOR_URL", usage: "base URL of the orchestrator API (required)",
		apply: func(c *Config, v string) error { c.OrchestratorURL = strings.TrimRight(v, "/"); return nil }},
	{flag: "token", env: "AGENT_TOKEN", usage: "enrollment token (required; prefer the environment)", secret: true,
		apply: func(c *Config, v string) error { c.Token = v; return nil }},
	{flag: "state-dir", env: "AGENT_STATE_DIR", def: "/var/lib/letsbe-agent", usage: "directory for the agent's identity and journal",
		apply: func(c *Config, v string) error { return setAbsPath(&c.StateDir, v) }},
	{flag: "allowed-commands", env: "AGENT_ALLOWED_COMMANDS", def: strings.Join(DefaultAllowedCommands, ","), usage: "programs SHELL tasks may run (comma or space separated)",
		apply: func(c *Config, v string) error { c.AllowedCommands = splitList(v); return nil }},
	{flag: "file-roots", env: "AGENT_FILE_ROOTS", def: "/opt/letsbe", usage: "directories file tasks may change (comma separated)",
		apply: func(c *Config, v string) error {
			c.FileRoots = nil
			for _, p := range splitList(v) {
				if !filepath.IsAbs(p) {
					return fmt.Errorf("%q is not an absolute path", p)
				}
				c.FileRoots = append(c.FileRoots, filepath.Clean(p))
			}
			return nil
		}},
	{flag: "max-file-bytes", env: "AGENT_MAX_FILE_BYTES", def: "16Mi", usage: "largest file a file task reads or writes (bytes, or a size such as 512Ki or 16Mi)",
		apply: func(c *Config, v string) error { return setSize(&c.MaxFileBytes, v, 1<<30) }},
	{flag: "max-report-bytes", env: "AGENT_MAX_REPORT_BYTES", def: "512Ki", usage: "largest report body sent to the orchestrator; larger results are shortened to fit (bytes, or a size such as 512Ki, at least 4Ki)",
		apply: func(c *Config, v string) error {
			if err := setSize(&c.MaxReportBytes, v, 1<<30); err != nil {
				return err
			}
			if c.MaxReportBytes < 4<<10 {
				return errors.New("must be at least 4Ki")
			}
			return nil
		}},
	{flag: "max-task-bytes", env: "AGENT_MAX_TASK_BYTES", def: "32Mi", usage: "largest task body taken from the orchestrator; a larger task is reported FAILED (bytes, or a size such as 32Mi, at least 64Ki)",
		apply: func(c *Config, v string) error {
			if err := setSize(&c.MaxTaskBytes, v, 1<<30); err != nil {
				return err
			}
			if c.MaxTaskBytes < 64<<10 {
				return errors.New("must be at least 64Ki")
			}
			return nil
		}},
	{flag: "docker-binary", env: "AGENT_DOCKER_BINARY", def: "docker", usage: "docker CLI that DOCKER_RELOAD runs: a name looked up in PATH or an absolute path",
		apply: func(c *Config, v string) error { return setProgram(&c.DockerBinary, v) }},
	{flag: "docker-host", env: "AGENT_DOCKER_HOST", usage: "DOCKER_HOST of the docker commands the compose tasks run, e.g. unix:///run/docker.sock (default docker's own)",
		apply: func(c *Config, v string) error { c.DockerHost = v; return nil }},
	{flag: "docker-config", env: "AGENT_DOCKER_CONFIG", usage: "DOCKER_CONFIG of the docker commands (registry logins, cli-plugins) as an absolute path (default docker's own, ~/.docker)",
		apply: func(c *Config, v string) error {
			if v == "" {
				c.DockerConfig = ""
				return nil
			}
			return setAbsPath(&c.DockerConfig, v)
		}},
	{flag: "compose-allow-privileged", env: "AGENT_COMPOSE_ALLOW_PRIVILEGED", def: "false", usage: "allow privileged: true and unconfined security_opt in compose projects",
		apply: func(c *Config, v string) error { return setBool(&c.ComposeAllowPrivileged, v) }},
	{flag: "compose-allow-host-namespaces", env: "AGENT_COMPOSE_ALLOW_HOST_NAMESPACES", def: "false", usage: "allow pid, ipc, uts, userns_mode, cgroup: host, network_mode: host and container: namespaces in compose projects",
		apply: func(c *Config, v string) error { return setBool(&c.ComposeAllowHostNamespaces, v) }},
	{flag: "compose-allowed-capabilities", env: "AGENT_COMPOSE_ALLOWED_CAPABILITIES", usage: "capabilities cap_add may name in compose projects, comma separated (default none)",
		apply: func(c *Config, v string) error { c.ComposeAllowedCapabilities = splitList(v); return nil }},
	{flag: "compose-allow-devices", env: "AGENT_COMPOSE_ALLOW_DEVICES", def: "false", usage: "allow devices, device_cgroup_rules and GPU reservations in compose projects",
		apply: func(c *Config, v string) error { return setBool(&c.ComposeAllowDevices, v) }},
	{flag: "compose-bind-roots", env: "AGENT_COMPOSE_BIND_ROOTS", usage: "directories bind mounts of compose projects must lie in, comma separated (default the file roots; /, /etc, /var/run/docker.sock only if listed exactly)",
		apply: func(c *Config, v string) error {
			c.ComposeBindRoots = nil
			for _, p := range splitList(v) {
				if !filepath.IsAbs(p) {
					return fmt.Errorf("%q is not an absolute path", p)
				}
				c.ComposeBindRoots = append(c.ComposeBindRoots, filepath.Clean(p))
			}
			return nil
		}},
	{flag: "stack-revisions", env: "AGENT_STACK_REVISIONS", def: "5", usage: "revisions of each compose project kept for rollback",
		apply: func(c *Config, v string) error { return setPositiveInt(&c.StackRevisions, v, 100) }},
	{flag: "stack-recheck-interval", env: "AGENT_STACK_RECHECK_INTERVAL", def: "5m", usage: "how often each deployed compose project is observed again for its Stack and the heartbeat",
		apply: func(c *Config, v string) error { return setDuration(&c.StackRecheckInterval, v, 100*time.Millisecond) }},
	{flag: "stack-self-heal", env: "AGENT_STACK_SELF_HEAL", def: "false", usage: "restart degraded or drifted services of a deployed compose project (at most once per recheck interval, backing off on failures)",
		apply: func(c *Config, v string) error { return setBool(&c.StackSelfHeal, v) }},
	{flag: "chromium-path", env: "AGENT_CHROMIUM_PATH", usage: "browser that PLAYWRIGHT tasks run: a name looked up in PATH or an absolute path (default chromium or chromium-browser in PATH)",
		apply: func(c *Config, v string) error {
			if v == "" {
				c.ChromiumPath = ""
				return nil
			}
			return setProgram(&c.ChromiumPath, v)
		}},
	{flag: "browser-allowed-hosts", env: "AGENT_BROWSER_ALLOWED_HOSTS", usage: "the only hosts PLAYWRIGHT tasks may reach: names, IP addresses or *.domain, comma separated (default any host)",
		apply: func(c *Config, v string) error { c.BrowserAllowedHosts = splitList(v); return nil }},
	{flag: "max-browser-tasks", env: "AGENT_MAX_BROWSER_TASKS", def: "1", usage: "PLAYWRIGHT tasks (browsers) at once; others wait their turn",
		apply: func(c *Config, v string) error { return setPositiveInt(&c.MaxBrowserTasks, v, 64) }},
	{flag: "heartbeat-interval", env: "AGENT_HEARTBEAT_INTERVAL", def: "30s", usage: "heartbeat interval unless the orchestrator sets one",
		apply: func(c *Config, v string) error { return setDuration(&c.HeartbeatInterval, v, 100*time.Millisecond) }},
	{flag: "poll-interval", env: "AGENT_POLL_INTERVAL", def: "5s", usage: "wait between polls when idle unless the orchestrator sets one",
		apply: func(c *Config, v string) error { return setDuration(&c.PollInterval, v, 10*time.Millisecond) }},
	{flag: "max-concurrent-tasks", env: "AGENT_MAX_CONCURRENT_TASKS", def: "4", usage: "tasks executed at once",
		apply: func(c *Config, v string) error { return setPositiveInt(&c.MaxConcurrentTasks, v, 1024) }},
	{flag: "task-timeout", env: "AGENT_TASK_TIMEOUT", def: "1h", usage: "maximum (and default) run time of a task",
		apply: func(c *Config, v string) error { return setDuration(&c.TaskTimeout, v, time.Second) }},
	{flag: "shutdown-grace", env: "AGENT_SHUTDOWN_GRACE", def: "30s", usage: "on SIGTERM, how long running tasks may finish before they are cancelled",
		apply: func(c *Config, v string) error { return setDuration(&c.ShutdownGrace, v, 0) }},
	{flag: "backoff-base", env: "AGENT_BACKOFF_BASE", def: "500ms", usage: "ceiling of the first retry delay; doubles per attempt up to 30s, with full jitter",
		apply: func(c *Config, v string) error { return setDuration(&c.BackoffBase, v, time.Millisecond) }},
	{flag: "log-format", env: "AGENT_LOG_FORMAT", def: "json", usage: "json or console",
		apply: func(c *Config, v string) error { return setEnum(&c.LogFormat, v, "json", "console") }},
	{flag: "log-level", env: "AGENT_LOG_LEVEL", def: "info", usage: "error, info, debug or trace",
		apply: func(c *Config, v string) error { return setEnum(&c.LogLevel, v, "error", "info", "debug", "trace") }},
	{flag: "http-addr", env: "AGENT_HTTP_ADDR", def: "127.0.0.1:9464", allowEmpty: true, usage: "local listener for /metrics, /healthz, /readyz and /debug/tasks (empty disables)",
		apply: func(c *Config, v string) error {
			if v != "" {
				if _, _, err := net.SplitHostPort(v); err != nil {
					return errors.New("want host:port, or empty to disable")
				}
			}
			c.HTTPAddr = v
			return nil
		}},
	{flag: "progress-interval", env: "AGENT_PROGRESS_INTERVAL", def: "1s", usage: "least time between two progress reports of a running task (when the orchestrator asks for progress)",
		apply: func(c *Config, v string) error { return setDuration(&c.ProgressInterval, v, 10*time.Millisecond) }},
	{flag: "progress-max-bytes", env: "AGENT_PROGRESS_MAX_BYTES", def: "64Ki", usage: "largest progress report (bytes, or a size such as 64Ki); more output waits for the next one",
		apply: func(c *Config, v string) error {
			if err := setSize(&c.ProgressMaxBytes, v, 16<<20); err != nil {
				return err
			}
			if c.ProgressMaxBytes < 1024 {
				return errors.New("want at least 1Ki")
			}
			return nil
		}},
	{flag: "task-keys", env: "AGENT_TASK_KEYS", usage: "JWKS file of the public keys that sign tasks; when set, unsigned or badly signed tasks are refused (default: signatures are not checked)",
		apply: func(c *Config, v string) error {
			if v == "" {
				c.TaskKeys = ""
				return nil
			}
			return setAbsPath(&c.TaskKeys, v)
		}},
	{flag: "allow-unsigned-tasks", env: "AGENT_ALLOW_UNSIGNED_TASKS", def: "false", usage: "with AGENT_TASK_KEYS, still run tasks that carry no signature (a signature that is present is checked)",
		apply: func(c *Config, v string) error { return setBool(&c.AllowUnsignedTasks, v) }},
	{flag: "require-task-expiry", env: "AGENT_REQUIRE_TASK_EXPIRY", def: "false", usage: "refuse signed tasks without not_after",
		apply: func(c *Config, v string) error { return setBool(&c.RequireTaskExpiry, v) }},
	{flag: "policy", env: "AGENT_POLICY", usage: "YAML file bounding what any task may do (types, SHELL command patterns, file roots, browser hosts); narrows the other settings, re-read on SIGHUP",
		apply: func(c *Config, v string) error {
			if v == "" {
				c.Policy = ""
				return nil
			}
			return setAbsPath(&c.Policy, v)
		}},
	{flag: "http-allow-remote", env: "AGENT_HTTP_ALLOW_REMOTE", def: "false", usage: "allow a non-loopback AGENT_HTTP_ADDR without AGENT_HTTP_TOKEN (anyone who reaches it reads metrics and task states)",
		apply: func(c *Config, v string) error { return setBool(&c.HTTPAllowRemote, v) }},
	{flag: "http-token", env: "AGENT_HTTP_TOKEN", secret: true, usage: "bearer token the local listener requires for everything but /healthz (prefer the environment)",
		apply: func(c *Config, v string) error {
			for _, r := range v {
				if r < 0x21 || r == 0x7f {
					return errors.New("must be printable without spaces")
				}
			}
			c.HTTPToken = v
			return nil
		}},
	{flag: "labels", env: "AGENT_LABELS", usage: "labels sent at registration (k=v,k2=v2)",
		apply: func(c *Config, v string) error { return setLabels(&c.Labels, v) }},
	{flag: "store", env: "AGENT_STORE", def: StoreMemory, usage: "where Tasks live: memory (with the journal in the state directory) or kubernetes (custom resources on the cluster's API server)",
		apply: func(c *Config, v string) error { return setEnum(&c.Store, v, StoreMemory, StoreKubernetes) }},
	{flag: "namespace", env: "AGENT_NAMESPACE", usage: "kubernetes store: the namespace of the Tasks and the Lease (default the pod's namespace, else " + DefaultNamespace + ")",
		apply: func(c *Config, v string) error { return setNamespace(&c.Namespace, v) }},
	{flag: "leader-election", env: "AGENT_LEADER_ELECTION", def: "true", usage: "kubernetes store: only the replica holding the Lease polls and runs tasks (true or false)",
		apply: func(c *Config, v string) error { return setBool(&c.LeaderElection, v) }},
	{flag: "lease-duration", env: "AGENT_LEASE_DURATION", def: "15s", usage: "kubernetes store: how long a standby waits before taking over a Lease that is not renewed",
		apply: func(c *Config, v string) error { return setDuration(&c.LeaseDuration, v, time.Second) }},
	{flag: "lease-renew-deadline", env: "AGENT_LEASE_RENEW_DEADLINE", def: "10s", usage: "kubernetes store: how long the leader keeps trying to renew its Lease before it stops (and exits)",
		apply: func(c *Config, v string) error { return setDuration(&c.LeaseRenewDeadline, v, 500*time.Millisecond) }},
	{flag: "lease-retry-period", env: "AGENT_LEASE_RETRY_PERIOD", def: "2s", usage: "kubernetes store: wait between attempts to acquire or renew the Lease",
		apply: func(c *Config, v string) error { return setDuration(&c.LeaseRetryPeriod, v, 100*time.Millisecond) }},
	{flag: "task-retention", env: "AGENT_TASK_RETENTION", def: "1h", usage: "how long a finished Task stays once the orchestrator accepted its final report (the last 1,000 such Tasks at most)",
		apply: func(c *Config, v string) error { return setDuration(&c.TaskRetention, v, time.Second) }},
	{flag: "task-dedup-window", env: "AGENT_TASK_DEDUP_WINDOW", def: "24h", usage: "how long the agent remembers a task whose final report the orchestrator accepted (and that report), so that the task offered again is answered with the same report, never run twice",
		apply: func(c *Config, v string) error { return setDuration(&c.TaskDedupWindow, v, time.Minute) }},
}

// Stores AGENT_STORE names.
const (
	StoreMemory     = "memory"
	StoreKubernetes = "kubernetes"
)

// DefaultNamespace is the kubernetes store's namespace outside a pod, when AGENT_NAMESPACE is
// not set.
const DefaultNamespace = "letsbe-system"

// podNamespaceFile holds the pod's namespace in every pod with a service account token.
const podNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Mode says which checks Load applies.
type Mode int

const (
	// ModeRun needs an orchestrator URL and a token.
	ModeRun Mode = iota
	// ModeDev runs against the embedded development orchestrator: both are optional.
	ModeDev
)

// Load builds a Config from command-line arguments (without the program name) and the
// environment (getenv is usually os.LookupEnv). Flags win over the environment, which wins over
// the file (--config), which wins over the defaults. Errors name the setting and never echo a
// secret. It returns flag.ErrHelp when help was asked for, after printing usage to out.
func Load(args []string, lookupEnv func(string) (string, bool), mode Mode, out io.Writer) (*Config, error) {
	fs := pflag.NewFlagSet("letsbe-agent", pflag.ContinueOnError)
	fs.SetOutput(out)
	flags := Bind(fs)
	if err := fs.Parse(NormalizeArgs(fs, args)); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return flags.Load(lookupEnv, mode)
}

// Flags are the settings bound to a flag set by Bind.
type Flags struct {
	fs         *pflag.FlagSet
	values     map[string]*string
	configFile *string
}

// Bind adds one typed flag per setting (its environment variable named in the help), and
// --config, to fs. Call Flags.Load once fs is parsed.
func Bind(fs *pflag.FlagSet) *Flags {
	f := &Flags{fs: fs, values: make(map[string]*string, len(settings))}
	for _, s := range settings {
		v := &settingValue{kind: s.kindName()}
		f.values[s.flag] = &v.s
		usage := fmt.Sprintf("%s (env %s)", s.usage, s.env)
		fl := fs.VarPF(v, s.flag, "", usage)
		fl.DefValue = s.def
		if v.kind == "bool" {
			fl.NoOptDefVal = "true"
		}
	}
	f.configFile = fs.String("config", "", "YAML file with the same keys as the flags (precedence: flags > environment > file > defaults)")
	return f
}

// Changed reports whether the setting's flag was given on the command line.
func (f *Flags) Changed(name string) bool { return f.fs.Changed(name) }

// Load resolves every setting (flags > environment > file > defaults) and validates the result
// for mode.
func (f *Flags) Load(lookupEnv func(string) (string, bool), mode Mode) (*Config, error) {
	var file map[string]string
	if *f.configFile != "" {
		var err error
		if file, err = readFile(*f.configFile); err != nil {
			return nil, err
		}
	}
	cfg := &Config{}
	for _, s := range settings {
		v, source := s.def, "default"
		if fv, ok := file[s.flag]; ok {
			v, source = fv, *f.configFile
		}
		if ev, ok := lookupEnv(s.env); ok && (ev != "" || s.allowEmpty) {
			v, source = ev, s.env
		}
		if f.fs.Changed(s.flag) {
			v, source = *f.values[s.flag], "--"+s.flag
		}
		if err := s.apply(cfg, strings.TrimSpace(v)); err != nil {
			if s.secret {
				return nil, fmt.Errorf("invalid %s (from %s): %w", s.env, source, errors.New("bad value"))
			}
			return nil, fmt.Errorf("invalid %s (from %s) %q: %w", s.env, source, v, err)
		}
	}
	if err := cfg.Validate(mode); err != nil {
		return nil, err
	}
	return cfg, nil
}

// NormalizeArgs keeps the command lines of the standard flag package working under pflag: a
// single-dash long flag (-state-dir) becomes --state-dir, and a bool flag followed by true or
// false (--leader-election false) becomes --leader-election=false. Arguments after "--" are
// left alone.
func NormalizeArgs(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && fs.Lookup(name) != nil {
				a = "-" + a
			}
		}
		if name, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(name, "=") && i+1 < len(args) {
			if fl := fs.Lookup(name); fl != nil && fl.NoOptDefVal != "" {
				if _, err := strconv.ParseBool(args[i+1]); err == nil {
					a += "=" + args[i+1]
					i++
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// settingValue is a setting's flag: the raw text, checked by the setting's apply function when
// the configuration is loaded, with a type name for the help (duration, size, list, ...).
type settingValue struct {
	s, kind string
}

func (v *settingValue) String() string     { return v.s }
func (v *settingValue) Set(s string) error { v.s = s; return nil }
func (v *settingValue) Type() string       { return v.kind }

// kindName is the type the help shows for the setting: its kind when set, else one derived
// from its default and usage.
func (s setting) kindName() string {
	if s.kind != "" {
		return s.kind
	}
	low := strings.ToLower(s.usage)
	if _, err := strconv.ParseBool(s.def); err == nil && s.def != "1" && s.def != "0" {
		return "bool"
	}
	if _, err := time.ParseDuration(s.def); err == nil && s.def != "0" {
		return "duration"
	}
	if _, err := strconv.Atoi(s.def); err == nil {
		return "int"
	}
	if q, err := resource.ParseQuantity(s.def); err == nil && !q.IsZero() {
		return "size"
	}
	switch {
	case strings.Contains(low, "k=v"):
		return "map"
	case strings.Contains(low, "separated"):
		return "list"
	case strings.Contains(low, "looked up in path"):
		return "program"
	case strings.Contains(low, "absolute path") || strings.HasSuffix(s.flag, "-dir"):
		return "path"
	}
	return "string"
}

// Validate checks the settings that depend on each other or on the mode.
func (c *Config) Validate(mode Mode) error {
	if mode == ModeRun {
		if c.OrchestratorURL == "" {
			return errors.New("missing ORCHESTRATOR_URL (--orchestrator-url): the orchestrator's base URL is required")
		}
		if c.Token == "" {
			return errors.New("missing AGENT_TOKEN (--token): the enrollment token is required")
		}
	}
	if c.OrchestratorURL != "" {
		u, err := url.Parse(c.OrchestratorURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("invalid ORCHESTRATOR_URL %q: want an http or https URL with a host", redactURL(c.OrchestratorURL, u, err))
		}
		if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return fmt.Errorf("invalid ORCHESTRATOR_URL %q: must not carry credentials, a query or a fragment", redactURL(c.OrchestratorURL, u, nil))
		}
	}
	if len(c.AllowedCommands) == 0 {
		return errors.New("invalid AGENT_ALLOWED_COMMANDS: the list is empty")
	}
	if c.Store == StoreKubernetes && c.LeaderElection {
		// client-go's leader election needs lease > renew deadline > 1.2 x retry period.
		if c.LeaseDuration <= c.LeaseRenewDeadline {
			return fmt.Errorf("invalid AGENT_LEASE_DURATION %s: must be longer than AGENT_LEASE_RENEW_DEADLINE %s", c.LeaseDuration, c.LeaseRenewDeadline)
		}
		if c.LeaseRenewDeadline*5 <= c.LeaseRetryPeriod*6 {
			return fmt.Errorf("invalid AGENT_LEASE_RENEW_DEADLINE %s: must be longer than 1.2 x AGENT_LEASE_RETRY_PERIOD %s", c.LeaseRenewDeadline, c.LeaseRetryPeriod)
		}
	}
	if c.HTTPAddr != "" && !c.HTTPAllowRemote && c.HTTPToken == "" && !isLoopbackAddr(c.HTTPAddr) {
		return fmt.Errorf("invalid AGENT_HTTP_ADDR %s: not a loopback address; set AGENT_HTTP_TOKEN (required then for all but /healthz) or AGENT_HTTP_ALLOW_REMOTE=true", c.HTTPAddr)
	}
	for _, cmd := range c.AllowedCommands {
		if strings.ContainsAny(cmd, "/\\") || strings.TrimSpace(cmd) != cmd {
			return fmt.Errorf("invalid AGENT_ALLOWED_COMMANDS entry %q: want a program name, not a path", cmd)
		}
	}
	return nil
}

// redactURL shows a URL for an error message without what may be a credential: user info,
// query and fragment; a URL that does not parse shows only its scheme, if any.
func redactURL(raw string, u *url.URL, err error) string {
	if err != nil || u == nil {
		if i := strings.Index(raw, "://"); i > 0 && i < 16 {
			return raw[:i] + "://..."
		}
		return "..."
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, Opaque: u.Opaque}
	if u.User != nil {
		r.User = url.User("redacted")
	}
	if u.RawQuery != "" || u.ForceQuery {
		r.RawQuery = "redacted"
	}
	return r.String()
}

// isLoopbackAddr reports whether host:port binds the loopback interface only.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LookupEnv is os.LookupEnv, for Load.
func LookupEnv(key string) (string, bool) { return os.LookupEnv(key) }

func splitList(v string) []string {
	fields := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	slices.Sort(fields)
	return slices.Compact(fields)
}

func setAbsPath(dst *string, v string) error {
	if v == "" || !filepath.IsAbs(v) {
		return errors.New("want an absolute path")
	}
	*dst = filepath.Clean(v)
	return nil
}

func setDuration(dst *time.Duration, v string, minimum time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want a Go duration such as 30s or 5m")
	}
	if d < minimum {
		return fmt.Errorf("must be at least %s", minimum)
	}
	*dst = d
	return nil
}

// setSize parses a byte count, plain or as a Kubernetes quantity (16Mi, 512Ki).
func setSize(dst *int64, v string, maximum int64) error {
	q, err := resource.ParseQuantity(v)
	n, ok := q.AsInt64()
	if err != nil || !ok || n < 1 || n > maximum {
		return fmt.Errorf("want a size from 1 byte to %d bytes, such as 16Mi or 1048576", maximum)
	}
	*dst = n
	return nil
}

// setProgram accepts a program name (looked up in PATH) or an absolute path.
func setProgram(dst *string, v string) error {
	if v == "" || strings.ContainsFunc(v, unicode.IsSpace) || (strings.Contains(v, "/") && !filepath.IsAbs(v)) {
		return errors.New("want a program name or an absolute path")
	}
	*dst = filepath.Clean(v)
	return nil
}

func setBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("want true or false")
	}
	*dst = b
	return nil
}

// setNamespace accepts a namespace name; empty means the pod's namespace, else
// DefaultNamespace.
func setNamespace(dst *string, v string) error {
	if v == "" {
		v = defaultNamespace(podNamespaceFile)
	}
	if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
		return fmt.Errorf("want a namespace name: %s", strings.Join(errs, "; "))
	}
	*dst = v
	return nil
}

// defaultNamespace is the namespace in file (the pod's), else DefaultNamespace.
func defaultNamespace(file string) string {
	if b, err := os.ReadFile(file); err == nil && strings.TrimSpace(string(b)) != "" {
		return strings.TrimSpace(string(b))
	}
	return DefaultNamespace
}

func setPositiveInt(dst *int, v string, maximum int) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maximum {
		return fmt.Errorf("want an integer from 1 to %d", maximum)
	}
	*dst = n
	return nil
}

func setEnum(dst *string, v string, allowed ...string) error {
	v = strings.ToLower(v)
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
	}
	*dst = v
	return nil
}

var labelKey = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$`)

func setLabels(dst *map[string]string, v string) error {
	labels := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || !labelKey.MatchString(k) {
			return fmt.Errorf("label %q: want key=value with a simple key", pair)
		}
		labels[k] = val
	}
	*dst = labels
	return nil
}
