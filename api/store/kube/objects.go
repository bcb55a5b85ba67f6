package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// objects is what Store and StackStore share: the client, reader and informer of one object
// type (Tasks, Stacks) in one namespace. Its helpers below are the mechanics that are the same
// for both types, written once; each store adds what is its type's own.
type objects struct {
	c        client.Client
	r        client.Reader
	informer cache.Informer
	ns       string
	log      logr.Logger
	kind     string               // "task", "stack": in errors and log lines
	resource schema.GroupResource // of NotFound errors
}

// newObjects checks opts and registers the informer of obj's type with opts.Informers (waiting
// within ctx for it to sync when the cache already runs); what names the store in errors.
func newObjects(ctx context.Context, opts Options, what string, obj client.Object, kind string, resource schema.GroupResource) (objects, error) {
	switch {
	case opts.Client == nil:
		return objects{}, errors.New(what + ": Client is required")
	case opts.Informers == nil:
		return objects{}, errors.New(what + ": Informers are required")
	case opts.Namespace == "":
		return objects{}, errors.New(what + ": Namespace is required")
	}
	inf, err := opts.Informers.GetInformer(ctx, obj)
	if err != nil {
		return objects{}, fmt.Errorf("%s: %s informer: %w", what, kind, err)
	}
	o := objects{c: opts.Client, r: opts.Reader, informer: inf, ns: opts.Namespace, log: opts.Logger, kind: kind, resource: resource}
	if o.r == nil {
		o.r = opts.Client
	}
	if o.log.GetSink() == nil {
		o.log = logr.Discard()
	}
	return o, nil
}

// get reads the named object into obj (a new *agentv1.Task or *agentv1.Stack) from the API
// server and returns it without its managed fields. An empty name is NotFound, as in the
// memory store (the client would refuse it with an error of its own).
func get[T client.Object](ctx context.Context, o *objects, name string, obj T) (T, error) {
	var none T
	if name == "" {
		return none, apierrors.NewNotFound(o.resource, name)
	}
	if err := o.r.Get(ctx, client.ObjectKey{Namespace: o.ns, Name: name}, obj); err != nil {
		return none, err
	}
	obj.SetManagedFields(nil)
	return obj, nil
}

// create creates obj, the caller's copy of a new object, in the namespace and strips the
// managed fields of what the API server returned into it.
func (o *objects) create(ctx context.Context, obj client.Object) error {
	if obj.GetName() == "" {
		return apierrors.NewBadRequest(o.kind + " name is required")
	}
	if obj.GetResourceVersion() != "" {
		return apierrors.NewBadRequest("resourceVersion must not be set on create")
	}
	obj.SetNamespace(o.ns)
	if err := o.c.Create(ctx, obj); err != nil {
		return err
	}
	obj.SetManagedFields(nil)
	return nil
}

// maxConflictRetries bounds update's retries of an unconditional write on Conflict.
const maxConflictRetries = 16

// update writes obj (a *agentv1.Task or *agentv1.Stack), its status when status is set (the
// status subresource) or else all of it but the status, and returns what the API server
// stored. With a resourceVersion obj is written as it is, and a stale one is a Conflict;
// without, set copies obj's part onto a fresh read (read, the store's Get), which is written,
// again at once on Conflict, up to maxConflictRetries times.
func update[T client.Object](ctx context.Context, o *objects, obj T, status bool, read func(context.Context, string) (T, error), set func(cur T)) (T, error) {
	put := func(obj T) error {
		if status {
			return o.c.Status().Update(ctx, obj)
		}
		return o.c.Update(ctx, obj)
	}
	var none T
	if obj.GetResourceVersion() != "" {
		cp := obj.DeepCopyObject().(T)
		cp.SetNamespace(o.ns)
		if err := put(cp); err != nil {
			return none, err
		}
		return cp, nil
	}
	var written T
	err := retry.RetryOnConflict(wait.Backoff{Steps: maxConflictRetries}, func() error {
		cur, err := read(ctx, obj.GetName())
		if err != nil {
			return err
		}
		set(cur)
		if err := put(cur); err != nil {
			return err
		}
		written = cur
		return nil
	})
	if err != nil {
		if apierrors.IsConflict(err) {
			what := o.kind
			if status {
				what = "status of " + o.kind
			}
			err = fmt.Errorf("update %s %s: still conflicting after %d attempts", what, obj.GetName(), maxConflictRetries)
		}
		return none, err
	}
	return written, nil
}

// listAll lists the objects of the namespace into list from the API server and makes its
// items (*items, list's Items) what List promises: without managed fields, ordered by name.
// PT is *agentv1.Task or *agentv1.Stack.
func listAll[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, o *objects, list client.ObjectList, items *[]T) error {
	if err := o.r.List(ctx, list, client.InNamespace(o.ns)); err != nil {
		return fmt.Errorf("list %s: %w", o.resource.Resource, err)
	}
	for i := range *items {
		PT(&(*items)[i]).SetManagedFields(nil)
	}
	slices.SortFunc(*items, func(a, b T) int { return strings.Compare(PT(&a).GetName(), PT(&b).GetName()) })
	return nil
}

// delete deletes the named object; obj is an empty one of its type.
func (o *objects) delete(ctx context.Context, name string, obj client.Object) error {
	if name == "" {
		return apierrors.NewNotFound(o.resource, name)
	}
	obj.SetNamespace(o.ns)
	obj.SetName(name)
	return o.c.Delete(ctx, obj)
}
