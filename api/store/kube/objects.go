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
