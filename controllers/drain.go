package controllers

import (
	"context"

	"github.com/letsbe/sysadmin-agent/api/store"
)

// Unfinished returns how many Tasks of st are not final (0 when st cannot be listed).
func Unfinished(ctx context.Context, st store.Store) int {
	list, err := store.ViewList(ctx, st)
	if err != nil {
		return 0
	}
	n := 0
	for _, t := range list {
		if !t.Status.Phase.IsFinal() {
			n++
		}
	}
	return n
}

// WaitIdle waits until no Task of st is unfinished, or ctx ends; it reports whether st went
// idle. It is driven by st's change notifications: it lists once at the start and once after
// each burst of changes, never on a timer (in cluster mode every List is a request to the
// API server).
func WaitIdle(ctx context.Context, st store.Store, n store.Notifier) bool {
	changed := make(chan struct{}, 1)
	unsubscribe := n.Subscribe(func(store.Event) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer unsubscribe()
	for {
		// Subscribed before listing: a change after this List wakes the loop again.
		if Unfinished(ctx, st) == 0 {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// CancelPending fails every unfinished Task of st with cause: a running one through reg (its
// worker ends it), one that never started at once.
func CancelPending(ctx context.Context, st store.Store, reg *Registry, cause error) {
	list, err := st.List(ctx)
	if err != nil {
		return
	}
	for i := range list.Items {
		if t := &list.Items[i]; !t.Status.Phase.IsFinal() {
			_, _ = Cancel(ctx, st, reg, t.Name, cause)
		}
	}
}
