package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var stackResource = agentv1.GroupVersion.WithResource("stacks").GroupResource()

// StackStore is a store.StackStore and store.StackNotifier on a Kubernetes API server, for one
// namespace, with the same Options as Store. Create it with NewStackStore.
type StackStore struct {
	c        client.Client
	r        client.Reader
	informer cache.Informer
	ns       string
	log      logr.Logger
}

var (
	_ store.StackStore    = (*StackStore)(nil)
	_ store.StackNotifier = (*StackStore)(nil)
)

// NewStackStore returns a StackStore for opts.Namespace. It registers the Stack informer with
// opts.Informers; when that cache is already running, it waits (within ctx) until the
// informer has synced.
func NewStackStore(ctx context.Context, opts Options) (*StackStore, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("kube stack store: Client is required")
	case opts.Informers == nil:
		return nil, errors.New("kube stack store: Informers are required")
	case opts.Namespace == "":
		return nil, errors.New("kube stack store: Namespace is required")
	}
	inf, err := opts.Informers.GetInformer(ctx, &agentv1.Stack{})
	if err != nil {
		return nil, fmt.Errorf("kube stack store: stack informer: %w", err)
	}
	s := &StackStore{c: opts.Client, r: opts.Reader, informer: inf, ns: opts.Namespace, log: opts.Logger}
	if s.r == nil {
		s.r = opts.Client
	}
	if s.log.GetSink() == nil {
		s.log = logr.Discard()
	}
	return s, nil
}

// Get implements store.StackStore.
func (s *StackStore) Get(ctx context.Context, name string) (*agentv1.Stack, error) {
	if name == "" {
		return nil, apierrors.NewNotFound(stackResource, name)
	}
	obj := &agentv1.Stack{}
	if err := s.r.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: name}, obj); err != nil {
		return nil, err
	}
	obj.ManagedFields = nil
	return obj, nil
}

// Create implements store.StackStore: the API server stores metadata and spec (status is a
// subresource).
func (s *StackStore) Create(ctx context.Context, stack *agentv1.Stack) error {
	if stack.Name == "" {
		return apierrors.NewBadRequest("stack name is required")
	}
	if stack.ResourceVersion != "" {
		return apierrors.NewBadRequest("resourceVersion must not be set on create")
	}
	obj := stack.DeepCopy()
	obj.Namespace = s.ns
	obj.Status = agentv1.StackStatus{}
	if err := s.c.Create(ctx, obj); err != nil {
		return err
	}
	obj.ManagedFields = nil
	stack.ObjectMeta = *obj.ObjectMeta.DeepCopy()
	return nil
}

// Update implements store.StackStore. The API server ignores a status in an update of the main
// resource and bumps the generation when the spec changes.
func (s *StackStore) Update(ctx context.Context, stack *agentv1.Stack) error {
	return s.write(ctx, stack, false)
}

// UpdateStatus implements store.StackStore.
func (s *StackStore) UpdateStatus(ctx context.Context, stack *agentv1.Stack) error {
	return s.write(ctx, stack, true)
}

func (s *StackStore) write(ctx context.Context, stack *agentv1.Stack, status bool) error {
	put := func(obj *agentv1.Stack) error {
		if status {
			return s.c.Status().Update(ctx, obj)
		}
		return s.c.Update(ctx, obj)
	}
	if stack.ResourceVersion != "" {
		obj := stack.DeepCopy()
		obj.Namespace = s.ns
		if err := put(obj); err != nil {
			return err
		}
		stack.ResourceVersion, stack.Generation = obj.ResourceVersion, obj.Generation
		return nil
	}
	// Unconditionally: re-read and write again at once on Conflict.
	err := retry.RetryOnConflict(wait.Backoff{Steps: maxConflictRetries}, func() error {
		cur, err := s.Get(ctx, stack.Name)
		if err != nil {
			return err
		}
		if status {
			stack.Status.DeepCopyInto(&cur.Status)
		} else {
			cur.Spec = stack.Spec
			cur.Labels, cur.Annotations = stack.Labels, stack.Annotations
		}
		if err := put(cur); err != nil {
			return err
		}
		stack.ResourceVersion, stack.Generation = cur.ResourceVersion, cur.Generation
		return nil
	})
	if apierrors.IsConflict(err) {
		return fmt.Errorf("update stack %s: still conflicting after %d attempts", stack.Name, maxConflictRetries)
	}
	return err
}

// List implements store.StackStore: the Stacks of the namespace, ordered by name.
func (s *StackStore) List(ctx context.Context) (*agentv1.StackList, error) {
	list := &agentv1.StackList{}
	if err := s.r.List(ctx, list, client.InNamespace(s.ns)); err != nil {
		return nil, fmt.Errorf("list stacks: %w", err)
	}
	for i := range list.Items {
		list.Items[i].ManagedFields = nil
	}
	slices.SortFunc(list.Items, func(a, b agentv1.Stack) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// Delete implements store.StackStore.
func (s *StackStore) Delete(ctx context.Context, name string) error {
	if name == "" {
		return apierrors.NewNotFound(stackResource, name)
	}
	obj := &agentv1.Stack{}
	obj.Namespace, obj.Name = s.ns, name
	return s.c.Delete(ctx, obj)
}

// Subscribe implements store.StackNotifier with a handler on the Stack informer, as Store's
// Subscribe does for Tasks: each subscriber gets its own copies, asynchronously after the
// write, and first hears Added for every Stack already in the cache.
func (s *StackStore) Subscribe(h store.StackHandler) func() {
	return subscribe(s.informer, s.ns, s.log, "stack", func(typ store.EventType, stack *agentv1.Stack) {
		h(store.StackEvent{Type: typ, Stack: stack})
	})
}
