package kube

import (
	"context"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var taskResource = agentv1.GroupVersion.WithResource("tasks").GroupResource()

// NewScheme returns a scheme with the Kubernetes built-in types and the Task API, for the
// client and cache the store uses.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(agentv1.AddToScheme(s))
	return s
}

// Options configure a Store.
type Options struct {
	// Client writes Tasks, and reads them unless Reader is set. Its scheme must know the Task
	// API (NewScheme). Required.
	Client client.Client
	// Reader reads Tasks. It must read from the API server, not from a cache: with a manager,
	// pass mgr.GetAPIReader() here and mgr.GetClient() as Client. Client when nil.
	Reader client.Reader
	// Informers provide the Task informer that drives the notifications: a cache covering
	// Namespace, e.g. mgr.GetCache(). Required.
	Informers cache.Informers
	// Namespace holds the Tasks. Required.
	Namespace string
	// Logger reports what cannot be returned as an error; discarded when unset.
	Logger logr.Logger
}

// Store is a store.Store and store.Notifier on a Kubernetes API server. Create it with New.
type Store struct{ objects }

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// New returns a Store for opts.Namespace. It registers the Task informer with opts.Informers;
// when that cache is already running, New waits (within ctx) until the informer has synced.
func New(ctx context.Context, opts Options) (*Store, error) {
	o, err := newObjects(ctx, opts, "kube store", &agentv1.Task{}, "task", taskResource)
	if err != nil {
		return nil, err
	}
	return &Store{o}, nil
}

// Namespace returns the namespace holding the Tasks.
func (s *Store) Namespace() string { return s.ns }

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, name string) (*agentv1.Task, error) {
	return get(ctx, &s.objects, name, &agentv1.Task{})
}

// Create implements store.Store. The API server stores metadata and spec; a status on task is
// ignored (it is a subresource), and task's status is left as the caller set it.
func (s *Store) Create(ctx context.Context, task *agentv1.Task) error {
	obj := task.DeepCopy()
	obj.Status = agentv1.TaskStatus{}
	if err := s.create(ctx, obj); err != nil {
		return err
	}
	task.ObjectMeta = *obj.ObjectMeta.DeepCopy()
	return nil
}

// UpdateStatus implements store.Store. An empty resourceVersion writes unconditionally, as with
// the in-memory store (re-reading on Conflict: the status is ours to write whole).
func (s *Store) UpdateStatus(ctx context.Context, task *agentv1.Task) error {
	written, err := update(ctx, &s.objects, task, true, s.Get, func(cur *agentv1.Task) {
		task.Status.DeepCopyInto(&cur.Status)
	})
	if err != nil {
		return err
	}
	task.ResourceVersion = written.ResourceVersion
	return nil
}

// List implements store.Store: the Tasks of the namespace, ordered by name.
func (s *Store) List(ctx context.Context) (*agentv1.TaskList, error) {
	list := &agentv1.TaskList{}
	if err := listAll(ctx, &s.objects, list, &list.Items); err != nil {
		return nil, err
	}
	return list, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.delete(ctx, name, &agentv1.Task{})
}

// Subscribe implements store.Notifier with a handler on the Task informer. Each subscriber
// receives its own copy of every Task; resyncs that change nothing are not announced. A
// handler that blocks delays only its own later events.
func (s *Store) Subscribe(h store.Handler) func() {
	return subscribe(&s.objects, func(typ store.EventType, task *agentv1.Task) {
		h(store.Event{Type: typ, Task: task})
	})
}
