package kube

import (
	"context"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var stackResource = agentv1.GroupVersion.WithResource("stacks").GroupResource()

// StackStore is a store.StackStore and store.StackNotifier on a Kubernetes API server, for one
// namespace, with the same Options as Store. Create it with NewStackStore.
type StackStore struct{ objects }

var (
	_ store.StackStore    = (*StackStore)(nil)
	_ store.StackNotifier = (*StackStore)(nil)
)

// NewStackStore returns a StackStore for opts.Namespace. It registers the Stack informer with
// opts.Informers; when that cache is already running, it waits (within ctx) until the
// informer has synced.
func NewStackStore(ctx context.Context, opts Options) (*StackStore, error) {
	o, err := newObjects(ctx, opts, "kube stack store", &agentv1.Stack{}, "stack", stackResource)
	if err != nil {
		return nil, err
	}
	return &StackStore{o}, nil
}

// Get implements store.StackStore.
func (s *StackStore) Get(ctx context.Context, name string) (*agentv1.Stack, error) {
	return get(ctx, &s.objects, name, &agentv1.Stack{})
}

// Create implements store.StackStore: the API server stores metadata and spec (status is a
// subresource).
func (s *StackStore) Create(ctx context.Context, stack *agentv1.Stack) error {
	obj := stack.DeepCopy()
	obj.Status = agentv1.StackStatus{}
	if err := s.create(ctx, obj); err != nil {
		return err
	}
	stack.ObjectMeta = *obj.ObjectMeta.DeepCopy()
	return nil
}

// Update implements store.StackStore. The API server ignores a status in an update of the main
// resource and bumps the generation when the spec changes.
func (s *StackStore) Update(ctx context.Context, stack *agentv1.Stack) error {
	return s.write(ctx, stack, false, func(cur *agentv1.Stack) {
		cur.Spec = stack.Spec
		cur.Labels, cur.Annotations = stack.Labels, stack.Annotations
	})
}

// UpdateStatus implements store.StackStore.
func (s *StackStore) UpdateStatus(ctx context.Context, stack *agentv1.Stack) error {
	return s.write(ctx, stack, true, func(cur *agentv1.Stack) { stack.Status.DeepCopyInto(&cur.Status) })
}

// write writes stack with update and gives it the new resourceVersion and generation.
func (s *StackStore) write(ctx context.Context, stack *agentv1.Stack, status bool, set func(cur *agentv1.Stack)) error {
	written, err := update(ctx, &s.objects, stack, status, s.Get, set)
	if err != nil {
		return err
	}
	stack.ResourceVersion, stack.Generation = written.ResourceVersion, written.Generation
	return nil
}

// List implements store.StackStore: the Stacks of the namespace, ordered by name.
func (s *StackStore) List(ctx context.Context) (*agentv1.StackList, error) {
	list := &agentv1.StackList{}
	if err := listAll(ctx, &s.objects, list, &list.Items); err != nil {
		return nil, err
	}
	return list, nil
}

// Delete implements store.StackStore.
func (s *StackStore) Delete(ctx context.Context, name string) error {
	return s.delete(ctx, name, &agentv1.Stack{})
}

// Subscribe implements store.StackNotifier with a handler on the Stack informer, as Store's
// Subscribe does for Tasks: each subscriber gets its own copies, asynchronously after the
// write, and first hears Added for every Stack already in the cache.
func (s *StackStore) Subscribe(h store.StackHandler) func() {
	return subscribe(&s.objects, func(typ store.EventType, stack *agentv1.Stack) {
		h(store.StackEvent{Type: typ, Stack: stack})
	})
}
