// Package kube keeps Tasks as custom resources on a Kubernetes API server: a
// store.Store and store.Notifier over a controller-runtime client and cache, for one namespace.
// It is the store of cluster mode, where the API server (and k3s's datastore behind it) is the
// agent's durable memory and `kubectl get tasks` shows what the agent does.
//
// # Names
//
// Callers keep using the orchestrator's task ids as Task names, exactly as with the in-memory
// store: the store translates. A Task named id is stored as the object ObjectName(id) (the id
// itself when it is a valid object name, else a DNS-safe form plus a short hash) with the id in
// the agentv1.AnnotationTaskID annotation, and every Task the store returns or announces is
// named by that annotation again. So the reconcilers and the sync side work unchanged, and
// Task.TaskID() is the id in both modes. Objects without the annotation (made by hand with
// kubectl, say) are named by their object name.
//
// # Consistency
//
// Reads (Get, List) go to the API server, not to a cache: the reconcilers read their own writes
// and must not see an older status. Notifications come from an informer on the cache, so, unlike
// the in-memory store's, they arrive asynchronously after the write and a new subscriber first
// hears Added for every Task already in the cache. Handlers only enqueue and read fresh state,
// so neither matters to them.
package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var taskResource = agentv1.GroupVersion.WithResource("tasks").GroupResource()

// maxConflictRetries bounds the store's own retries on Conflict (writing the initial status
// after Create, unconditional status updates).
const maxConflictRetries = 16

// cleanupTimeout bounds removing an object whose Create failed half-way.
const cleanupTimeout = 30 * time.Second

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
type Store struct {
	c        client.Client
	r        client.Reader
	informer cache.Informer
	ns       string
	log      logr.Logger

	// creating counts, by object name, the Creates between writing the object and writing its
	// initial status: the informer's events for such an object are held back until the status
	// is there, so that subscribers (and the reconcilers behind them) never see a Task without
	// its status, as with the in-memory store.
	mu       sync.Mutex
	creating map[string]int
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
)

// New returns a Store for opts.Namespace. It registers the Task informer with opts.Informers;
// when that cache is already running, New waits (within ctx) until the informer has synced.
func New(ctx context.Context, opts Options) (*Store, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("kube store: Client is required")
	case opts.Informers == nil:
		return nil, errors.New("kube store: Informers are required")
	case opts.Namespace == "":
		return nil, errors.New("kube store: Namespace is required")
	}
	inf, err := opts.Informers.GetInformer(ctx, &agentv1.Task{})
	if err != nil {
		return nil, fmt.Errorf("kube store: task informer: %w", err)
	}
	s := &Store{
		c: opts.Client, r: opts.Reader, informer: inf, ns: opts.Namespace, log: opts.Logger,
		creating: make(map[string]int),
	}
	if s.r == nil {
		s.r = opts.Client
	}
	if s.log.GetSink() == nil {
		s.log = logr.Discard()
	}
	return s, nil
}

// Namespace returns the namespace holding the Tasks.
func (s *Store) Namespace() string { return s.ns }

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*agentv1.Task, error) {
	obj, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	return fromObject(obj), nil
}

// get reads the object of the Task with id, as stored (named by its object name).
func (s *Store) get(ctx context.Context, id string) (*agentv1.Task, error) {
	if id == "" {
		return nil, apierrors.NewNotFound(taskResource, id)
	}
	obj := &agentv1.Task{}
	if err := s.r.Get(ctx, client.ObjectKey{Namespace: s.ns, Name: ObjectName(id)}, obj); err != nil {
		return nil, mapError(err, id)
	}
	if taskID(obj) != id {
		// Another id's object under the same name (a hash collision in theory, or one made by
		// hand): not this Task.
		return nil, apierrors.NewNotFound(taskResource, id)
	}
	return obj, nil
}

// Create implements store.Store. The API server ignores the status of a new object (the status
// is a subresource), so a Task created with a status (Pending, or Failed at intake) gets it in
// a second write, unless someone else wrote a status in between; if that write fails, the
// object is removed again and Create fails.
func (s *Store) Create(ctx context.Context, task *agentv1.Task) error {
	id := task.Name
	if id == "" {
		return apierrors.NewBadRequest("task name is required")
	}
	if task.ResourceVersion != "" {
		return apierrors.NewBadRequest("resourceVersion must not be set on create")
	}
	obj := s.toObject(task)
	if !isZero(&task.Status) {
		s.startCreating(obj.Name)
		defer s.doneCreating(obj.Name)
	}
	if err := s.c.Create(ctx, obj); err != nil {
		return mapError(err, id)
	}
	if !isZero(&task.Status) {
		written, err := s.writeInitialStatus(ctx, obj, &task.Status)
		if err != nil {
			s.remove(obj)
			return fmt.Errorf("write initial status of task %s: %w", id, mapError(err, id))
		}
		obj = written
	}
	task.ObjectMeta = *fromObject(obj).ObjectMeta.DeepCopy()
	return nil
}

// writeInitialStatus writes status to the new object obj, re-reading on Conflict; it stops
// (without error) once it finds that another writer set a status first.
func (s *Store) writeInitialStatus(ctx context.Context, obj *agentv1.Task, status *agentv1.TaskStatus) (*agentv1.Task, error) {
	for range maxConflictRetries {
		status.DeepCopyInto(&obj.Status)
		err := s.c.Status().Update(ctx, obj)
		if err == nil || !apierrors.IsConflict(err) {
			return obj, err
		}
		cur := &agentv1.Task{}
		if err := s.r.Get(ctx, client.ObjectKeyFromObject(obj), cur); err != nil {
			return nil, err
		}
		if cur.UID != obj.UID {
			return nil, apierrors.NewNotFound(taskResource, obj.Name)
		}
		if !isZero(&cur.Status) {
			return cur, nil // another writer got there first: its status is newer than ours
		}
		obj = cur
	}
	return nil, fmt.Errorf("still conflicting after %d attempts", maxConflictRetries)
}

// remove deletes an object that Create could not complete; best effort, outliving ctx.
func (s *Store) remove(obj *agentv1.Task) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := s.c.Delete(ctx, obj, client.Preconditions{UID: &obj.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		s.log.Error(err, "Cannot remove a task whose initial status could not be written", "task", taskID(obj))
	}
}

// UpdateStatus implements store.Store. An empty resourceVersion writes unconditionally, as with
// the in-memory store (re-reading on Conflict).
func (s *Store) UpdateStatus(ctx context.Context, task *agentv1.Task) error {
	id := task.Name
	if task.ResourceVersion == "" {
		return s.updateStatusUnconditionally(ctx, task)
	}
	obj := s.toObject(task)
	if err := s.c.Status().Update(ctx, obj); err != nil {
		return mapError(err, id)
	}
	task.ResourceVersion = obj.ResourceVersion
	return nil
}

func (s *Store) updateStatusUnconditionally(ctx context.Context, task *agentv1.Task) error {
	id := task.Name
	for range maxConflictRetries {
		cur, err := s.get(ctx, id)
		if err != nil {
			return err
		}
		task.Status.DeepCopyInto(&cur.Status)
		err = s.c.Status().Update(ctx, cur)
		if err == nil {
			task.ResourceVersion = cur.ResourceVersion
			return nil
		}
		if !apierrors.IsConflict(err) {
			return mapError(err, id)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return fmt.Errorf("update status of task %s: still conflicting after %d attempts", id, maxConflictRetries)
}

// List implements store.Store: the Tasks of the namespace, ordered by (orchestrator id) name.
func (s *Store) List(ctx context.Context) (*agentv1.TaskList, error) {
	list := &agentv1.TaskList{}
	if err := s.r.List(ctx, list, client.InNamespace(s.ns)); err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	for i := range list.Items {
		item := &list.Items[i]
		item.Name = taskID(item)
		item.ManagedFields = nil
	}
	slices.SortFunc(list.Items, func(a, b agentv1.Task) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	obj, err := s.get(ctx, id)
	if err != nil {
		return err
	}
	if err := s.c.Delete(ctx, obj, client.Preconditions{UID: &obj.UID}); err != nil {
		if apierrors.IsConflict(err) {
			// The UID precondition failed: the object was replaced, so ours is gone.
			return apierrors.NewNotFound(taskResource, id)
		}
		return mapError(err, id)
	}
	return nil
}

// Subscribe implements store.Notifier with a handler on the Task informer. Each subscriber
// receives its own copy of every Task, named by its orchestrator id. A Task created through
// this store with a status is announced (Added) only once its status is written; resyncs that
// change nothing are not announced. A handler that blocks delays only its own later events.
func (s *Store) Subscribe(h store.Handler) func() {
	// held are the objects this subscriber was not told about yet (their initial status is
	// being written). The informer calls a handler's funcs one at a time: no lock needed.
	held := make(map[types.UID]struct{})
	emit := func(typ store.EventType, obj *agentv1.Task) {
		h(store.Event{Type: typ, Task: fromObject(obj)})
	}
	reg, err := s.informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			obj, ok := s.ours(o)
			if !ok {
				return
			}
			if s.initializing(obj) {
				held[obj.UID] = struct{}{}
				return
			}
			emit(store.Added, obj)
		},
		UpdateFunc: func(oldObj, o any) {
			obj, ok := s.ours(o)
			if !ok {
				return
			}
			if old, ok := oldObj.(*agentv1.Task); ok && old.ResourceVersion == obj.ResourceVersion {
				return
			}
			if _, wasHeld := held[obj.UID]; wasHeld {
				if s.initializing(obj) {
					return
				}
				delete(held, obj.UID)
				emit(store.Added, obj)
				return
			}
			emit(store.Modified, obj)
		},
		DeleteFunc: func(o any) {
			if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = tomb.Obj
			}
			obj, ok := s.ours(o)
			if !ok {
				return
			}
			if _, wasHeld := held[obj.UID]; wasHeld {
				delete(held, obj.UID)
				return
			}
			emit(store.Deleted, obj)
		},
	})
	if err != nil {
		// Only when the informer has stopped: there will be no events to miss.
		s.log.Error(err, "Cannot subscribe to task changes")
		return func() {}
	}
	return func() {
		if err := s.informer.RemoveEventHandler(reg); err != nil {
			s.log.Error(err, "Cannot unsubscribe from task changes")
		}
	}
}

// ours returns the informer's object as a Task when it is in the store's namespace.
func (s *Store) ours(o any) (*agentv1.Task, bool) {
	obj, ok := o.(*agentv1.Task)
	return obj, ok && obj.Namespace == s.ns
}

func (s *Store) startCreating(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creating[name]++
}

func (s *Store) doneCreating(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.creating[name]--; s.creating[name] <= 0 {
		delete(s.creating, name)
	}
}

// initializing reports whether obj is a Task this store is creating and whose initial status
// is not written yet.
func (s *Store) initializing(obj *agentv1.Task) bool {
	if !isZero(&obj.Status) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.creating[obj.Name] > 0
}

func isZero(status *agentv1.TaskStatus) bool {
	return apiequality.Semantic.DeepEqual(*status, agentv1.TaskStatus{})
}

// toObject returns a copy of task as stored: in the namespace, under its object name, with the
// task-id annotation.
func (s *Store) toObject(task *agentv1.Task) *agentv1.Task {
	obj := task.DeepCopy()
	id := task.Name
	obj.Name = ObjectName(id)
	obj.Namespace = s.ns
	if obj.Annotations == nil {
		obj.Annotations = make(map[string]string, 1)
	}
	obj.Annotations[agentv1.AnnotationTaskID] = id
	return obj
}

// fromObject returns a copy of a stored object as callers see it: named by its orchestrator id,
// without the server's field-ownership bookkeeping (managedFields), which callers have no use
// for and which status updates then leave as the server has it.
func fromObject(obj *agentv1.Task) *agentv1.Task {
	task := obj.DeepCopy()
	task.Name = taskID(obj)
	task.ManagedFields = nil
	return task
}

// mapError names the Task by its orchestrator id in NotFound and AlreadyExists errors about
// Tasks, so that callers never see object names. Errors about other things (a missing
// namespace, say) stay as they are.
func mapError(err error, id string) error {
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return err
	}
	if d := status.Status().Details; d == nil || d.Group != taskResource.Group || d.Kind != taskResource.Resource {
		return err
	}
	switch {
	case apierrors.IsNotFound(err):
		return apierrors.NewNotFound(taskResource, id)
	case apierrors.IsAlreadyExists(err):
		return apierrors.NewAlreadyExists(taskResource, id)
	}
	return err
}
