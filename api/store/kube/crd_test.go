package kube_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// TestCRDValidation: the API server enforces the CRD's schema from config/crd/bases.
func TestCRDValidation(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ns := env.Namespace(t)
	task := func(name string, mutate func(*agentv1.Task)) *agentv1.Task {
		obj := storetest.NewTask(name)
		obj.Name, obj.Namespace = name, ns
		if mutate != nil {
			mutate(obj)
		}
		return obj
	}
	tests := []struct {
		name    string
		obj     *agentv1.Task
		invalid bool
	}{
		{"valid", task("valid", nil), false},
		{"no type", task("no-type", func(o *agentv1.Task) { o.Spec.Type = "" }), true},
		{"no task id", task("no-task-id", func(o *agentv1.Task) { o.Spec.TaskID = "" }), true},
		{"no payload", task("no-payload", func(o *agentv1.Task) { o.Spec.Payload = nil }), false},
		{"bad name", task("Bad_Name", nil), true},
		{"timeout", task("timeout", func(o *agentv1.Task) { o.Spec.Timeout = &metav1.Duration{Duration: 90 * time.Second} }), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := env.Client.Create(t.Context(), tc.obj)
			if tc.invalid != apierrors.IsInvalid(err) || (!tc.invalid && err != nil) {
				t.Fatalf("create: got %v, want invalid=%v", err, tc.invalid)
			}
		})
	}
}

// TestCRDStatusSubresource: status and spec are written separately, and a status with a phase
// outside the enum, or a condition without its required fields, is refused.
func TestCRDStatusSubresource(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	ns := env.Namespace(t)
	obj := storetest.NewTask("sub")
	obj.Namespace = ns
	obj.Spec.Payload = &runtime.RawExtension{Raw: []byte(`{"nested":{"list":[1,"two",{"three":3}]},"big":9007199254740993}`)}
	obj.Status.Phase = agentv1.TaskRunning
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if obj.Status.Phase != "" {
		t.Fatalf("create kept the status: %+v", obj.Status)
	}

	// A plain update ignores the status.
	obj.Status.Phase = agentv1.TaskRunning
	obj.Labels["a"] = "c"
	if err := env.Client.Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if obj.Status.Phase != "" || obj.Labels["a"] != "c" {
		t.Fatalf("plain update: phase %q labels %v", obj.Status.Phase, obj.Labels)
	}

	// A status update ignores the spec and keeps the status, results of any JSON included.
	obj.Spec.Type = agentv1.TypeShell
	obj.Status.MarkSucceeded(metav1.Now(), 1)
	obj.Status.Result = &runtime.RawExtension{Raw: []byte(`{"exit_code":0,"stdout":"hi\n"}`)}
	want := obj.Status.DeepCopy()
	if err := env.Client.Status().Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
	got := &agentv1.Task{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Type != agentv1.TypeEcho {
		t.Errorf("status update changed the spec: type %q", got.Spec.Type)
	}
	if diff := cmp.Diff(*want, got.Status, sameSecond); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(storetest.JSONValue(t, obj.Spec.Payload.Raw), storetest.JSONValue(t, got.Spec.Payload.Raw)); diff != "" {
		t.Errorf("payload (-sent +stored):\n%s", diff)
	}

	for name, mutate := range map[string]func(*agentv1.Task){
		"phase": func(o *agentv1.Task) { o.Status.Phase = "Sleeping" },
		"condition": func(o *agentv1.Task) {
			o.Status.Conditions = append(o.Status.Conditions, metav1.Condition{Type: "Broken"})
		},
	} {
		bad := got.DeepCopy()
		mutate(bad)
		if err := env.Client.Status().Update(ctx, bad); !apierrors.IsInvalid(err) {
			t.Errorf("bad %s: got %v, want Invalid", name, err)
		}
	}
}

// TestCRDPrinterColumns: `kubectl get tasks` shows the task id, type, phase, Ready and its
// reason, and age (and the error with -o wide), read from the API server's table output that
// kubectl prints.
func TestCRDPrinterColumns(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	ns := env.Namespace(t)
	st := env.NewStore(t, ns)
	task := storetest.NewTask("Failed_1")
	task.Spec.Type = agentv1.TypeShell
	if err := st.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	task.Status.MarkPending(metav1.Now(), 1)
	task.Status.MarkFailed(metav1.Now(), 1, agentv1.ReasonFailed, "exit status 1")
	if err := st.UpdateStatus(ctx, task); err != nil {
		t.Fatal(err)
	}

	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := strings.TrimSuffix(env.Config.Host, "/") + "/apis/" + agentv1.GroupVersion.String() + "/namespaces/" + ns + "/tasks"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	var table metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&table); err != nil {
		t.Fatal(err)
	}
	var columns []string
	for _, c := range table.ColumnDefinitions {
		columns = append(columns, c.Name)
	}
	if diff := cmp.Diff([]string{"Name", "Task ID", "Type", "Phase", "Ready", "Reason", "Error", "Age"}, columns); diff != "" {
		t.Fatalf("columns (-want +got):\n%s", diff)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(table.Rows))
	}
	cells := table.Rows[0].Cells[:7]
	want := []any{agentv1.TaskName("Failed_1"), "Failed_1", "SHELL", "Failed", "False", agentv1.ReasonFailed, "exit status 1"}
	if diff := cmp.Diff(want, cells); diff != "" {
		t.Errorf("row (-want +got):\n%s", diff)
	}
}

// TestCRDSpecIsImmutable: the API server refuses any change of a Task's spec (the CEL rule
// self == oldSelf); its metadata may still change.
func TestCRDSpecIsImmutable(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	obj := storetest.NewTask("frozen")
	obj.Namespace = env.Namespace(t)
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*agentv1.Task)
	}{
		{"type", func(o *agentv1.Task) { o.Spec.Type = agentv1.TypeShell }},
		{"task id", func(o *agentv1.Task) { o.Spec.TaskID = "other" }},
		{"payload", func(o *agentv1.Task) { o.Spec.Payload = &runtime.RawExtension{Raw: []byte(`{"m":2}`)} }},
		{"timeout", func(o *agentv1.Task) { o.Spec.Timeout = &metav1.Duration{Duration: time.Second} }},
	}
	for _, tc := range tests {
		changed := obj.DeepCopy()
		tc.mutate(changed)
		if err := env.Client.Update(ctx, changed); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec is immutable") {
			t.Errorf("change of the %s: got %v, want Invalid: spec is immutable", tc.name, err)
		}
	}
	obj.Labels["a"] = "c"
	if err := env.Client.Update(ctx, obj); err != nil {
		t.Fatalf("metadata change: %v", err)
	}
}
