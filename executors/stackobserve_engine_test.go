package executors

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEngineStackObserver: a deployed project is recorded and observed ready; a stopped
// container is degraded and drifted; Heal brings it back through the gate without a new
// revision; Heal refuses over an edit not deployed yet; a docker that fails is an error, never a
// verdict.
func TestEngineStackObserver(t *testing.T) {
	t.Parallel()
	p := newEngineProject(t)
	ctx := t.Context()
	obs, err := NewStackObserver(p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := obs.Recorded(); err != nil || len(rec) != 0 {
		t.Fatalf("Recorded before any deploy = %+v, %v", rec, err)
	}
	p.write(t, webVersion{image: p.image1})
	res, err := p.deploy(t, nil)
	wantOK(t, res, err)

	rec, err := obs.Recorded()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]RecordedStack{{Project: p.name, Revision: 1, ComposePath: p.path}}, rec); diff != "" {
		t.Errorf("Recorded (-want +got):\n%s", diff)
	}
	o, err := obs.Observe(ctx, p.name)
	if err != nil {
		t.Fatal(err)
	}
	if o.Revision != 1 || len(o.NotReady)+len(o.Degraded)+len(o.Drift) != 0 || len(o.Services) != 1 || o.Services[0].Health != "healthy" {
		t.Errorf("observation of a good deploy = %+v", o)
	}

	ids := p.containerIDs(t)
	p.e.docker(t, "stop", "-t", "1", ids)
	o, err = obs.Observe(ctx, p.name)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"web"}, o.Degraded); diff != "" || len(o.NotReady) != 1 || len(o.Drift) != 1 || !strings.Contains(o.Drift[0], "service web is exited") {
		t.Errorf("observation after docker stop = %+v (degraded -want +got:\n%s)", o, diff)
	}

	healed, err := obs.Heal(ctx, p.name, 1)
	if err != nil {
		t.Fatalf("heal: %v", err)
	}
	if len(healed.Degraded)+len(healed.Drift) != 0 || healed.Revision != 1 {
		t.Errorf("observation after the heal = %+v", healed)
	}
	if got := p.page(t); got != "version 1" {
		t.Errorf("page after the heal = %q, want version 1", got)
	}
	if rec, _ := obs.LastGood(p.name); rec == nil || rec.Revision != 1 {
		t.Errorf("the heal recorded a revision: %+v", rec)
	}
	if _, err := obs.Heal(ctx, p.name, 2); !errors.Is(err, ErrHealBusy) || !strings.Contains(err.Error(), "revision 2 is no longer the last known good one") {
		t.Errorf("heal of another revision: %v", err)
	}

	// An edit that is not deployed yet is never healed over.
	p.write(t, webVersion{image: p.image2})
	p.e.docker(t, "stop", "-t", "1", p.containerIDs(t))
	if _, err := obs.Heal(ctx, p.name, 1); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "changed since revision 1") {
		t.Errorf("heal over an edit: %v", err)
	}
	if b, _ := os.ReadFile(p.path); !strings.Contains(string(b), p.image2) {
		t.Errorf("the heal overwrote the edit:\n%s", b)
	}

	// docker failing is an error, not a degraded stack.
	broken := p.cfg
	broken.DockerHost = "unix:///nonexistent/docker.sock"
	bad, err := NewStackObserver(broken)
	if err != nil {
		t.Fatal(err)
	}
	if o, err := bad.Observe(ctx, p.name); err == nil || !strings.Contains(err.Error(), "docker ps") {
		t.Errorf("observation without an engine = %+v, %v", o, err)
	}
	if _, err := obs.Observe(ctx, "never-deployed"); err == nil || !strings.Contains(err.Error(), "no last known good revision") {
		t.Errorf("observation of an unknown project: %v", err)
	}
}
