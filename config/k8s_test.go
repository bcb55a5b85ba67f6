package config_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/letsbe/sysadmin-agent/config"
)

const k8sDir = "config/k8s"

// strictDecoder decodes the built-in kinds and CRDs, failing on unknown or duplicate fields.
func strictDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// decodeAll decodes every YAML document of b strictly into its typed object.
func decodeAll(t *testing.T, name string, b []byte) []runtime.Object {
	t.Helper()
	dec := strictDecoder(t)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || isOnlyComments(doc) {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: strict decode: %v", name, err)
		}
		if _, unstructured := obj.(runtime.Unstructured); unstructured {
			t.Fatalf("%s: %s decoded to no typed object", name, gvk)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		t.Fatalf("%s holds no object", name)
	}
	return objs
}

func isOnlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// kustomization is the part of kustomization.yaml the test reads; strict decoding keeps it
// to the fields listed here.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	ConfigMapGenerator []struct {
		Name string   `json:"name"`
		Envs []string `json:"envs"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

func readKustomization(t *testing.T) kustomization {
	t.Helper()
	var k kustomization
	if err := yaml.UnmarshalStrict(readRepoFile(t, k8sDir+"/kustomization.yaml"), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return k
}

// configMapEnv reads the env files of the ConfigMap generator.
func configMapEnv(t *testing.T, k kustomization) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.Envs {
			set, _ := parseEnvFile(t, readRepoFile(t, filepath.Join(k8sDir, f)))
			for name, v := range set {
				env[name] = v
			}
		}
	}
	return env
}

// TestK8sManifests decodes every manifest of config/k8s and the CRD strictly into the
// Kubernetes API types, and checks the Deployment as written.
func TestK8sManifests(t *testing.T) {
	t.Parallel()
	k := readKustomization(t)
	if k.Namespace != "letsbe-system" {
		t.Errorf("kustomization namespace = %q", k.Namespace)
	}
	for _, img := range k.Images {
		if img.NewTag == "" || img.NewTag == "latest" {
			t.Errorf("image %s has tag %q, want a version", img.Name, img.NewTag)
		}
	}
	if !slices.Contains(k.Resources, "../crd") {
		t.Errorf("kustomization resources %v lack the generated CRD (../crd)", k.Resources)
	}
	if slices.ContainsFunc(k.Resources, func(r string) bool { return strings.Contains(r, "secret") }) {
		t.Errorf("kustomization resources %v include a Secret: tokens are never committed", k.Resources)
	}

	files, err := filepath.Glob(filepath.Join(repoRoot, k8sDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]runtime.Object{}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			continue
		}
		if base != "secret.example.yaml" && !slices.Contains(k.Resources, base) {
			t.Errorf("%s is not listed in kustomization.yaml", base)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range decodeAll(t, base, b) {
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			byKind[kind] = append(byKind[kind], obj)
		}
	}
	for _, name := range []string{"tasks", "stacks"} {
		crds := decodeAll(t, "crd", readRepoFile(t, "config/crd/bases/agent.letsbe.io_"+name+".yaml"))
		if crd, ok := crds[0].(*apiextensionsv1.CustomResourceDefinition); !ok || crd.Name != name+".agent.letsbe.io" {
			t.Errorf("CRD = %T %v, want %s.agent.letsbe.io", crds[0], crds[0], name)
		}
	}

	var kinds []string
	for kind, objs := range byKind {
		for range objs {
			kinds = append(kinds, kind)
		}
	}
	slices.Sort(kinds)
	if diff := cmp.Diff([]string{"Deployment", "Namespace", "Secret", "ServiceAccount"}, kinds); diff != "" {
		t.Fatalf("kinds in %s (-want +got):\n%s", k8sDir, diff)
	}
	secret := byKind["Secret"][0].(*corev1.Secret)
	sa := byKind["ServiceAccount"][0].(*corev1.ServiceAccount)
	checkDeployment(t, byKind["Deployment"][0].(*appsv1.Deployment), configMapEnv(t, k), "letsbe-agent", secret, sa, singleAgent)
}

// TestKustomizeBuild builds config/k8s with kubectl kustomize, as `kubectl apply -k` does,
// and checks the result: every object strictly typed, the generated ConfigMap wired into the
// Deployment, the namespace applied, the CRD included unchanged.
func TestKustomizeBuild(t *testing.T) {
	t.Parallel()
	objs := decodeAll(t, "kubectl kustomize output", kustomizeBuild(t, k8sDir, "TestK8sManifests"))

	var (
		dep  *appsv1.Deployment
		cm   *corev1.ConfigMap
		sa   *corev1.ServiceAccount
		crds = map[string]*apiextensionsv1.CustomResourceDefinition{}
	)
	var names []string
	for _, obj := range objs {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			dep = o
		case *corev1.ConfigMap:
			cm = o
		case *corev1.ServiceAccount:
			sa = o
		case *apiextensionsv1.CustomResourceDefinition:
			crds[o.Name] = o
		}
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		names = append(names, kind)
	}
	slices.Sort(names)
	if diff := cmp.Diff([]string{"ConfigMap", "CustomResourceDefinition", "CustomResourceDefinition", "Deployment", "Namespace", "ServiceAccount"}, names); diff != "" {
		t.Fatalf("kinds built (-want +got):\n%s", diff)
	}
	for _, o := range []interface {
		GetNamespace() string
		GetName() string
	}{dep, cm, sa} {
		if o.GetNamespace() != "letsbe-system" {
			t.Errorf("%s is in namespace %q, want letsbe-system", o.GetName(), o.GetNamespace())
		}
	}
	if !strings.HasPrefix(cm.Name, "letsbe-agent-") {
		t.Errorf("ConfigMap name %q, want letsbe-agent-<hash>", cm.Name)
	}
	if got := dep.Spec.Template.Spec.Containers[0].Image; got != "letsbe-agent:0.0.0-dev" {
		t.Errorf("image = %q, want the kustomization's letsbe-agent:0.0.0-dev", got)
	}
	var secret corev1.Secret
	for _, obj := range decodeAll(t, "secret.example.yaml", readRepoFile(t, k8sDir+"/secret.example.yaml")) {
		secret = *obj.(*corev1.Secret)
	}
	checkDeployment(t, dep, cm.Data, cm.Name, &secret, sa, singleAgent)

	for _, name := range []string{"tasks", "stacks"} {
		generated := decodeAll(t, "crd", readRepoFile(t, "config/crd/bases/agent.letsbe.io_"+name+".yaml"))[0].(*apiextensionsv1.CustomResourceDefinition)
		crd := crds[generated.Name]
		if crd == nil {
			t.Errorf("CRD %s is not in the build", generated.Name)
			continue
		}
		// kustomize adds the common labels; everything else is the generated CRD unchanged.
		if crd.Labels["app.kubernetes.io/part-of"] != "letsbe" {
			t.Errorf("CRD %s labels = %v", crd.Name, crd.Labels)
		}
		crd.Labels = generated.Labels
		if diff := cmp.Diff(generated, crd); diff != "" {
			t.Errorf("CRD %s after kustomize (-generated +built):\n%s", crd.Name, diff)
		}
	}
}

// kustomizeBuild builds the kustomization in dir with kubectl kustomize, as `kubectl apply -k`
// does; without kubectl the test is skipped, naming the test that still decodes the manifests.
func kustomizeBuild(t *testing.T, dir, decodedBy string) []byte {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skipf("Skipping kubectl kustomize: %v (the manifests are still decoded by %s)", err, decodedBy)
	}
	cmd := exec.CommandContext(t.Context(), kubectl, "kustomize", filepath.Join(repoRoot, dir))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, stderr.String())
	}
	return out
}

// deploymentShape is what differs between the agent's Deployments: one agent (config/k8s) or
// replicas electing a leader through the Kubernetes API (config/k8s-cluster).
type deploymentShape struct {
	replicas  int32
	strategy  appsv1.DeploymentStrategyType
	apiAccess bool // the pod mounts its service account token
}

var singleAgent = deploymentShape{replicas: 1, strategy: appsv1.RecreateDeploymentStrategyType}

// checkDeployment checks the agent's Deployment against the settings it gets from the
// ConfigMap (cmEnv, named cmName), the Secret and the ServiceAccount.
func checkDeployment(t *testing.T, dep *appsv1.Deployment, cmEnv map[string]string, cmName string, secret *corev1.Secret, sa *corev1.ServiceAccount, want deploymentShape) {
	t.Helper()
	spec := dep.Spec.Template.Spec
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != want.replicas {
		t.Errorf("replicas = %v, want %d", dep.Spec.Replicas, want.replicas)
	}
	if dep.Spec.Strategy.Type != want.strategy {
		t.Errorf("strategy = %q, want %s", dep.Spec.Strategy.Type, want.strategy)
	}
	if spec.ServiceAccountName != sa.Name {
		t.Errorf("serviceAccountName = %q, want %q", spec.ServiceAccountName, sa.Name)
	}
	// Explicit: unset, the ServiceAccount's own setting would decide.
	if a := spec.AutomountServiceAccountToken; a == nil || *a != want.apiAccess {
		got := "unset"
		if a != nil {
			got = strconv.FormatBool(*a)
		}
		t.Errorf("automountServiceAccountToken = %s, want %v: a token only where the agent uses the Kubernetes API", got, want.apiAccess)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 60 {
		t.Errorf("terminationGracePeriodSeconds = %v, want at least 60 (the agent drains for up to ~45s)", spec.TerminationGracePeriodSeconds)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if name, tag, _ := strings.Cut(c.Image, ":"); name == "" || tag == "latest" {
		t.Errorf("image %q", c.Image)
	}

	// The environment: the container's own entries plus the ConfigMap's.
	env := map[string]string{}
	var names []string
	for k, v := range cmEnv {
		env[k] = v
		names = append(names, k)
	}
	var tokenRef *corev1.SecretKeySelector
	for _, e := range c.Env {
		names = append(names, e.Name)
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			if e.Name == "AGENT_TOKEN" {
				tokenRef = e.ValueFrom.SecretKeyRef
				env[e.Name] = "from-the-secret"
			}
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		}
	}
	checkAgentEnv(t, "Deployment", names, []string{"ORCHESTRATOR_URL", "AGENT_TOKEN", "AGENT_STATE_DIR", "AGENT_HTTP_ADDR", "AGENT_FILE_ROOTS"})
	if _, err := config.Load(nil, lookupIn(env), config.ModeRun, nil); err != nil {
		t.Errorf("the agent refuses the pod's environment: %v", err)
	}
	if tokenRef == nil || tokenRef.Name != secret.Name {
		t.Errorf("AGENT_TOKEN = %+v, want a secretKeyRef to %s", tokenRef, secret.Name)
	} else if _, ok := secret.StringData[tokenRef.Key]; !ok {
		t.Errorf("AGENT_TOKEN key %q is not in the example Secret (keys %v)", tokenRef.Key, secret.StringData)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != cmName {
		t.Errorf("envFrom = %+v, want the ConfigMap %s", c.EnvFrom, cmName)
	}

	// The HTTP listener: on the pod's interfaces, on the probed port.
	host, portStr, err := net.SplitHostPort(env["AGENT_HTTP_ADDR"])
	if err != nil || host != "0.0.0.0" {
		t.Fatalf("AGENT_HTTP_ADDR = %q: want 0.0.0.0:port so that the kubelet reaches it", env["AGENT_HTTP_ADDR"])
	}
	port, _ := strconv.Atoi(portStr)
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != int32(port) {
		t.Fatalf("ports = %+v, want containerPort %d", c.Ports, port)
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path ||
			(p.probe.HTTPGet.Port.StrVal != c.Ports[0].Name && int(p.probe.HTTPGet.Port.IntVal) != port) {
			t.Errorf("probe for %s = %+v, want an HTTP GET of %s on port %d", p.path, p.probe, p.path, port)
		}
	}

	// Resources: requests and limits for both CPU and memory.
	for _, rl := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := rl[r]; !ok || q.IsZero() {
				t.Errorf("resources %+v lack %s", c.Resources, r)
			}
		}
	}

	// Mounts: host paths at the same paths (the managed roots, the docker socket, the state).
	hostPaths := map[string]*corev1.HostPathVolumeSource{}
	for _, v := range spec.Volumes {
		hostPaths[v.Name] = v.HostPath
	}
	mounted := map[string]*corev1.HostPathVolumeSource{}
	for _, m := range c.VolumeMounts {
		mounted[m.MountPath] = hostPaths[m.Name]
	}
	for _, path := range append(strings.Split(env["AGENT_FILE_ROOTS"], ","), env["AGENT_STATE_DIR"], "/var/run/docker.sock") {
		if hp := mounted[path]; hp == nil || hp.Path != path {
			t.Errorf("%s is not the host's %s mounted at the same path (%+v)", path, path, hp)
		}
	}
	if hp := mounted["/var/run/docker.sock"]; hp != nil && (hp.Type == nil || *hp.Type != corev1.HostPathSocket) {
		t.Errorf("the docker socket hostPath type = %v, want Socket", hp.Type)
	}

	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || (sc.Privileged != nil && *sc.Privileged) {
		t.Errorf("container securityContext = %+v, want no privilege escalation, capabilities dropped, a read-only image", sc)
	}
}
