package config_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

const k8sClusterDir = "config/k8s-cluster"

var clusterMode = deploymentShape{replicas: 2, strategy: appsv1.RollingUpdateDeploymentStrategyType, apiAccess: true}

// clusterKustomization is the part of config/k8s-cluster/kustomization.yaml the test reads;
// strict decoding keeps it to these fields.
type clusterKustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Patches []struct {
		Path string `json:"path"`
	} `json:"patches"`
}

// TestK8sClusterManifests decodes the cluster-mode overlay and the generated RBAC strictly into
// the Kubernetes API types: the overlay builds on config/k8s and config/rbac, the RoleBinding
// grants the generated Role to the agent's ServiceAccount.
func TestK8sClusterManifests(t *testing.T) {
	t.Parallel()
	var k clusterKustomization
	if err := yaml.UnmarshalStrict(readRepoFile(t, k8sClusterDir+"/kustomization.yaml"), &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", k8sClusterDir, err)
	}
	if k.Namespace != "letsbe-system" || !slices.Contains(k.Resources, "../k8s") || !slices.Contains(k.Resources, "../rbac") {
		t.Errorf("kustomization: namespace %q, resources %v; want letsbe-system, ../k8s and ../rbac", k.Namespace, k.Resources)
	}
	for _, p := range k.Patches {
		for _, obj := range decodeAll(t, p.Path, readRepoFile(t, filepath.Join(k8sClusterDir, p.Path))) {
			if _, ok := obj.(*appsv1.Deployment); !ok {
				t.Errorf("patch %s holds a %T, want the Deployment", p.Path, obj)
			}
		}
	}

	var rbac struct {
		Resources  []string `json:"resources"`
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
	}
	if err := yaml.UnmarshalStrict(readRepoFile(t, "config/rbac/kustomization.yaml"), &rbac); err != nil {
		t.Fatalf("config/rbac/kustomization.yaml: %v", err)
	}
	var role *rbacv1.Role
	var binding *rbacv1.RoleBinding
	for _, f := range rbac.Resources {
		for _, obj := range decodeAll(t, f, readRepoFile(t, filepath.Join("config/rbac", f))) {
			switch o := obj.(type) {
			case *rbacv1.Role:
				role = o
			case *rbacv1.RoleBinding:
				binding = o
			default:
				t.Errorf("config/rbac/%s holds a %T", f, obj)
			}
		}
	}
	if role == nil || binding == nil {
		t.Fatalf("config/rbac: Role %v, RoleBinding %v; want both", role, binding)
	}
	var sa corev1.ServiceAccount
	if err := yaml.UnmarshalStrict(readRepoFile(t, k8sDir+"/serviceaccount.yaml"), &sa); err != nil {
		t.Fatal(err)
	}
	checkBinding(t, binding, role, &sa)
}

// checkBinding: the binding grants role to the ServiceAccount, in its namespace.
func checkBinding(t *testing.T, binding *rbacv1.RoleBinding, role *rbacv1.Role, sa *corev1.ServiceAccount) {
	t.Helper()
	wantRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}
	if diff := cmp.Diff(wantRef, binding.RoleRef); diff != "" {
		t.Errorf("RoleBinding roleRef (-want +got):\n%s", diff)
	}
	ns := "letsbe-system"
	if sa.Namespace != "" {
		ns = sa.Namespace
	}
	wantSubjects := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns}}
	if diff := cmp.Diff(wantSubjects, binding.Subjects); diff != "" {
		t.Errorf("RoleBinding subjects (-want +got):\n%s", diff)
	}
	if binding.Namespace != role.Namespace {
		t.Errorf("RoleBinding in %q, Role in %q", binding.Namespace, role.Namespace)
	}
}

// TestKustomizeBuildClusterMode builds config/k8s-cluster as `kubectl apply -k` does: the base's
// objects plus the Role and RoleBinding, all in letsbe-system, and a Deployment of two replicas
// in cluster mode that still meets every check of the base Deployment.
func TestKustomizeBuildClusterMode(t *testing.T) {
	t.Parallel()
	out := kustomizeBuild(t, k8sClusterDir, "TestK8sClusterManifests")
	var (
		dep     *appsv1.Deployment
		cm      *corev1.ConfigMap
		sa      *corev1.ServiceAccount
		role    *rbacv1.Role
		binding *rbacv1.RoleBinding
		kinds   []string
	)
	for _, obj := range decodeAll(t, "kubectl kustomize output", out) {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			dep = o
		case *corev1.ConfigMap:
			cm = o
		case *corev1.ServiceAccount:
			sa = o
		case *rbacv1.Role:
			role = o
		case *rbacv1.RoleBinding:
			binding = o
		}
		kinds = append(kinds, obj.GetObjectKind().GroupVersionKind().Kind)
	}
	slices.Sort(kinds)
	want := []string{"ConfigMap", "CustomResourceDefinition", "CustomResourceDefinition", "Deployment", "Namespace", "Role", "RoleBinding", "ServiceAccount"}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Fatalf("kinds built (-want +got):\n%s", diff)
	}
	for _, o := range []interface {
		GetNamespace() string
		GetName() string
	}{dep, cm, sa, role, binding} {
		if o.GetNamespace() != "letsbe-system" {
			t.Errorf("%s is in namespace %q, want letsbe-system", o.GetName(), o.GetNamespace())
		}
	}
	var secret corev1.Secret
	for _, obj := range decodeAll(t, "secret.example.yaml", readRepoFile(t, k8sDir+"/secret.example.yaml")) {
		secret = *obj.(*corev1.Secret)
	}
	checkDeployment(t, dep, cm.Data, cm.Name, &secret, sa, clusterMode)
	checkBinding(t, binding, role, sa)

	// The generated Role, unchanged but for kustomize's labels.
	generated := decodeAll(t, "role.yaml", readRepoFile(t, "config/rbac/role.yaml"))[0].(*rbacv1.Role)
	if diff := cmp.Diff(generated.Rules, role.Rules); diff != "" {
		t.Errorf("Role rules after kustomize (-generated +built):\n%s", diff)
	}

	// Cluster mode, in the pod's namespace; both replicas share the host's state directory.
	c := dep.Spec.Template.Spec.Containers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if env["AGENT_STORE"].Value != "kubernetes" {
		t.Errorf("AGENT_STORE = %+v, want kubernetes", env["AGENT_STORE"])
	}
	if ref := env["AGENT_NAMESPACE"].ValueFrom; ref == nil || ref.FieldRef == nil || ref.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("AGENT_NAMESPACE = %+v, want the pod's namespace (fieldRef metadata.namespace)", env["AGENT_NAMESPACE"])
	}
	if ru := dep.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rollingUpdate = %+v, want maxUnavailable 0 (a new standby is up before an old pod stops)", ru)
	}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "state" && (v.HostPath == nil || v.HostPath.Path != "/var/lib/letsbe-agent") {
			t.Errorf("the state volume %+v is not the host's /var/lib/letsbe-agent: the replicas must share the identity", v)
		}
	}
}
