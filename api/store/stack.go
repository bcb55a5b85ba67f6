package store

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// StackStore is what the Stack reconciler, the Task reconcilers (which write a Stack's spec
// when a deploy makes a revision the last known good one) and the sync side (which reports the
// Stacks in every heartbeat) need of a Stack store: memory.StackStore on plain servers,
// kube.StackStore on an API server; storetest.RunStacks holds both to this contract, the same
// tiny-API-server semantics as Store's.
//
// Objects passed in are never retained, and objects returned are the caller's to change.
type StackStore interface {
	// Get returns the named Stack, or a NotFound error.
	Get(ctx context.Context, name string) (*agentv1.Stack, error)
	// Create stores a new Stack and fills in its server-set metadata (resourceVersion, uid,
	// generation 1, creationTimestamp). AlreadyExists if the name is taken. A status given
	// here is not stored: it is written with UpdateStatus.
	Create(ctx context.Context, stack *agentv1.Stack) error
	// Update replaces the Stack's spec and labels, never its status. A changed spec bumps
	// the generation. The resourceVersion must match the stored one (Conflict otherwise; an
	// empty one writes unconditionally); on success stack gets the new resourceVersion and
	// generation.
	Update(ctx context.Context, stack *agentv1.Stack) error
	// UpdateStatus replaces the Stack's status only, with the same resourceVersion rules as
	// Update.
	UpdateStatus(ctx context.Context, stack *agentv1.Stack) error
	// List returns all Stacks, ordered by name.
	List(ctx context.Context) (*agentv1.StackList, error)
	// Delete removes the named Stack, or returns NotFound.
	Delete(ctx context.Context, name string) error
}

// StackEvent is a Stack change notification. Stack is shared between all handlers: read it,
// never change it.
type StackEvent struct {
	Type  EventType
	Stack *agentv1.Stack
}

// StackHandler receives Stack change notifications, under the same rules as Handler: quick,
// never blocking, never calling back into the store.
type StackHandler func(StackEvent)

// StackNotifier is a Stack store that tells subscribers about every change.
type StackNotifier interface {
	// Subscribe registers h for all later changes and returns a function that removes it.
	Subscribe(h StackHandler) (unsubscribe func())
}

// MutateStack reads the named Stack, lets mutate change it, and writes it back with write (the
// store's Update or UpdateStatus), retrying from a fresh read on Conflict. When mutate returns
// false nothing is written. It returns the Stack as stored.
func MutateStack(ctx context.Context, s StackStore, name string, write func(context.Context, *agentv1.Stack) error, mutate func(*agentv1.Stack) bool) (*agentv1.Stack, error) {
	for range maxConflictRetries {
		stack, err := s.Get(ctx, name)
		if err != nil {
			return nil, err
		}
		if !mutate(stack) {
			return stack, nil
		}
		err = write(ctx, stack)
		if err == nil {
			return stack, nil
		}
		if !apierrors.IsConflict(err) {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("update stack %s: still conflicting after %d attempts", name, maxConflictRetries)
}
