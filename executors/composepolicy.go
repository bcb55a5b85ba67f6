package executors

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// ComposePolicy is what a Compose project may ask of the host. It is applied to the loaded
// project before docker runs; the zero value (with BindRoots filled in from the file roots)
// is the safe default: no privileged containers, no host namespaces, no added capabilities,
// no devices, bind mounts only inside the file roots.
type ComposePolicy struct {
	// AllowPrivileged allows `privileged: true` and security_opt that turn confinement off
	// (seccomp, AppArmor or SELinux unconfined, systempaths=unconfined).
	AllowPrivileged bool `json:"allow_privileged" yaml:"allow_privileged"`
	// AllowHostNamespaces allows the host's (or another container's) namespaces:
	// `pid`, `ipc`, `uts`, `userns_mode`, `cgroup` set to host, `network_mode: host`, and
	// `container:` references.
	AllowHostNamespaces bool `json:"allow_host_namespaces" yaml:"allow_host_namespaces"`
	// AllowedCapabilities are the capabilities `cap_add` may name (with or without the CAP_
	// prefix, any case); "ALL" only if listed. Empty: none.
	AllowedCapabilities []string `json:"allowed_capabilities" yaml:"allowed_capabilities"`
	// AllowDevices allows `devices`, `device_cgroup_rules` and GPU or device reservations.
	AllowDevices bool `json:"allow_devices" yaml:"allow_devices"`
	// BindRoots are the directories bind mounts (and local volumes bound to a host path,
	// config and secret files, build contexts) must lie in, as absolute paths; empty means
	// the file roots. /, /etc, /var/run/docker.sock and the other host paths of
	// sensitiveHostPaths are refused unless listed here themselves.
	BindRoots []string `json:"bind_roots" yaml:"bind_roots"`
	// PolicyFile, when set, names the AGENT_POLICY file whose compose section narrowed this
	// policy, so that a refusal names both rules that could allow it.
	PolicyFile string `json:"-" yaml:"-"`
}

// rule names what allows a refused field: the setting, and the policy file's key when a policy
// file narrowed the settings.
func (p ComposePolicy) rule(setting, key string) string {
	if p.PolicyFile == "" {
		return setting
	}
	return setting + " and compose." + key + " in AGENT_POLICY " + p.PolicyFile
}

// sensitiveHostPaths are refused as bind sources (or inside or above one) unless a bind root
// names them exactly.
var sensitiveHostPaths = []string{
	"/", "/etc", "/root", "/boot", "/proc", "/sys", "/dev", "/run", "/var/run",
	"/var/run/docker.sock", "/run/docker.sock", "/var/lib/docker", "/run/containerd", "/var/lib/containerd",
}

// IsSensitiveHostPath reports whether path (clean, absolute) is one of the host paths a bind
// root must name exactly to be bindable.
func IsSensitiveHostPath(path string) bool { return slices.Contains(sensitiveHostPaths, path) }

// Validate checks the policy's settings.
func (p ComposePolicy) Validate() error {
	for _, r := range p.BindRoots {
		if !filepath.IsAbs(r) {
			return fmt.Errorf("compose bind root %q is not an absolute path (AGENT_COMPOSE_BIND_ROOTS)", r)
		}
	}
	return nil
}

// withDefaults fills in BindRoots from the file roots.
func (p ComposePolicy) withDefaults(fileRoots []string) ComposePolicy {
	if len(p.BindRoots) == 0 {
		p.BindRoots = slices.Clone(fileRoots)
	} else {
		p.BindRoots = slices.Clone(p.BindRoots) // p may be shared (CurrentPolicy)
	}
	for i, r := range p.BindRoots {
		p.BindRoots[i] = filepath.Clean(r)
	}
	return p
}

// Check applies the policy to a loaded project. A refusal names the service (or the volume,
// config, secret) and the field, and the setting that would allow it.
func (p ComposePolicy) Check(project *types.Project) error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(project.Services)) {
		s := project.Services[name]
		errs = append(errs, p.checkService(name, s)...)
	}
	for _, name := range slices.Sorted(maps.Keys(project.Volumes)) {
		v := project.Volumes[name]
		if v.External {
			continue
		}
		if dev, ok := v.DriverOpts["device"]; ok && (v.Driver == "" || v.Driver == "local") && strings.Contains(v.DriverOpts["o"], "bind") {
			if err := p.checkBind(dev); err != nil {
				errs = append(errs, Refusedf("volume %s: driver_opts.device %s: %w", name, dev, err))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(project.Configs)) {
		if f := project.Configs[name].File; f != "" {
			if err := p.checkBind(f); err != nil {
				errs = append(errs, Refusedf("config %s: file %s: %w", name, f, err))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(project.Secrets)) {
		if f := project.Secrets[name].File; f != "" {
			if err := p.checkBind(f); err != nil {
				errs = append(errs, Refusedf("secret %s: file %s: %w", name, f, err))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return Refusedf("compose policy: %w", errors.Join(errs...))
}

func (p ComposePolicy) checkService(name string, s types.ServiceConfig) []error {
	var errs []error
	refuse := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("service %s: "+format, append([]any{name}, args...)...))
	}
	if !p.AllowPrivileged {
		if s.Privileged {
			refuse("privileged: true is refused (%s)", p.rule("AGENT_COMPOSE_ALLOW_PRIVILEGED", "allow_privileged"))
		}
		for _, opt := range s.SecurityOpt {
			o := strings.ToLower(strings.ReplaceAll(opt, ":", "="))
			if o == "seccomp=unconfined" || o == "apparmor=unconfined" || o == "label=disable" || o == "systempaths=unconfined" || strings.HasPrefix(o, "label=type=spc_t") {
				refuse("security_opt %q is refused (%s)", opt, p.rule("AGENT_COMPOSE_ALLOW_PRIVILEGED", "allow_privileged"))
			}
		}
	}
	if !p.AllowHostNamespaces {
		for _, f := range []struct{ field, value string }{
			{"network_mode", s.NetworkMode}, {"pid", s.Pid}, {"ipc", s.Ipc}, {"uts", s.Uts},
			{"userns_mode", s.UserNSMode}, {"cgroup", s.Cgroup},
		} {
			v := strings.ToLower(f.value)
			if v == "host" || strings.HasPrefix(v, "container:") {
				refuse("%s: %s is refused (%s)", f.field, f.value, p.rule("AGENT_COMPOSE_ALLOW_HOST_NAMESPACES", "allow_host_namespaces"))
			}
		}
	}
	for _, c := range s.CapAdd {
		if !capAllowed(c, p.AllowedCapabilities) {
			refuse("cap_add %s is refused (%s: %s)", c, p.rule("AGENT_COMPOSE_ALLOWED_CAPABILITIES", "allowed_capabilities"), orNone(p.AllowedCapabilities))
		}
	}
	if !p.AllowDevices {
		if len(s.Devices) > 0 {
			refuse("devices are refused (%s)", p.rule("AGENT_COMPOSE_ALLOW_DEVICES", "allow_devices"))
		}
		if len(s.DeviceCgroupRules) > 0 {
			refuse("device_cgroup_rules are refused (%s)", p.rule("AGENT_COMPOSE_ALLOW_DEVICES", "allow_devices"))
		}
		if len(s.Gpus) > 0 {
			refuse("gpus are refused (%s)", p.rule("AGENT_COMPOSE_ALLOW_DEVICES", "allow_devices"))
		}
		if s.Deploy != nil && s.Deploy.Resources.Reservations != nil && len(s.Deploy.Resources.Reservations.Devices) > 0 {
			refuse("deploy.resources.reservations.devices are refused (%s)", p.rule("AGENT_COMPOSE_ALLOW_DEVICES", "allow_devices"))
		}
	}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if err := p.checkBind(v.Source); err != nil {
			refuse("volumes: bind mount of %s: %v", v.Source, err)
		}
	}
	if s.Build != nil && s.Build.Context != "" && filepath.IsAbs(s.Build.Context) {
		if err := p.checkBind(s.Build.Context); err != nil {
			refuse("build.context %s: %v", s.Build.Context, err)
		}
	}
	return errs
}

// capAllowed reports whether capability c is in allowed (case and CAP_ prefix ignored).
func capAllowed(c string, allowed []string) bool {
	norm := func(s string) string { return strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "CAP_") }
	return slices.ContainsFunc(allowed, func(a string) bool { return norm(a) == norm(c) })
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// checkBind checks a host path a container would get: inside a bind root, lexically and once
// symbolic links are resolved (docker resolves them on the host), and not a sensitive host
// path (or inside or above one) that no bind root names exactly.
func (p ComposePolicy) checkBind(source string) error {
	if !filepath.IsAbs(source) {
		return fmt.Errorf("not an absolute path")
	}
	candidates := []string{filepath.Clean(source)}
	if resolved, err := filepath.EvalSymlinks(source); err == nil && resolved != candidates[0] {
		candidates = append(candidates, resolved)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot resolve it: %w", unwrapPathError(err))
	}
	for _, c := range candidates {
		if !slices.ContainsFunc(p.BindRoots, func(r string) bool { return within(r, c) }) {
			if c != candidates[0] {
				return fmt.Errorf("it resolves to %s, outside the bind roots (%s: %s)", c, p.rule("AGENT_COMPOSE_BIND_ROOTS", "bind_roots"), orNone(p.BindRoots))
			}
			return fmt.Errorf("outside the bind roots (%s: %s)", p.rule("AGENT_COMPOSE_BIND_ROOTS", "bind_roots"), orNone(p.BindRoots))
		}
		for _, s := range sensitiveHostPaths {
			touches := c == s || (s != "/" && (within(s, c) || within(c, s)))
			// Allowed when listed exactly, or when c lies in a bind root inside s (the
			// operator named that part of s).
			narrowed := within(s, c) && slices.ContainsFunc(p.BindRoots, func(r string) bool { return r != s && within(s, r) && within(r, c) })
			if touches && !slices.Contains(p.BindRoots, s) && !narrowed {
				return fmt.Errorf("%s is a sensitive host path, refused unless %s lists it exactly", s, p.rule("AGENT_COMPOSE_BIND_ROOTS", "bind_roots"))
			}
		}
	}
	return nil
}

// within reports whether path is root or inside it (both clean and absolute).
func within(root, path string) bool {
	if root == "/" {
		return true
	}
	return path == root || strings.HasPrefix(path, root+"/")
}
