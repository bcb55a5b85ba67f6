package progress

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHub(t *testing.T) {
	t.Parallel()
	h := NewHub()
	b := func(data string) Batch { return Batch{Output: []Chunk{{Stream: "stdout", Data: data}}} }
	if h.Offer("t-1", b("a")) {
		t.Fatal("a disabled hub took a batch")
	}
	h.SetEnabled(true)
	if h.Offer("t-1", Batch{}) {
		t.Error("an empty batch was taken")
	}
	if !h.Offer("t-1", b("a")) || !h.Offer("t-2", b("x")) {
		t.Fatal("Offer refused a first batch")
	}
	if h.Offer("t-1", b("b")) {
		t.Error("a second batch was taken while the first waits")
	}
	select {
	case <-h.Ready():
	default:
		t.Error("Ready not signalled after Offer")
	}
	task, got, ok := h.Take()
	if !ok || task != "t-1" {
		t.Fatalf("Take = %q, %v; want t-1 first", task, ok)
	}
	if diff := cmp.Diff(b("a"), got); diff != "" {
		t.Errorf("Take (-want +got):\n%s", diff)
	}
	if h.Waiting("t-1") || !h.Offer("t-1", b("b")) {
		t.Error("the slot of t-1 is not free after Take")
	}
	h.Close("t-1")
	if h.Waiting("t-1") {
		t.Error("Close kept the waiting batch")
	}
	if task, _, ok := h.Take(); !ok || task != "t-2" {
		t.Errorf("Take = %q, %v; want t-2", task, ok)
	}
	if task, _, ok := h.Take(); ok {
		t.Errorf("Take = %q from an empty hub", task)
	}
	var nilHub *Hub
	if nilHub.Enabled() {
		t.Error("a nil hub is enabled")
	}
}
