package store

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var taskResource = agentv1.GroupVersion.WithResource("tasks").GroupResource()

// Memory is an in-memory Store with change notification. The zero value is not usable: call
// NewMemory.
type Memory struct {
	mu       sync.RWMutex
	objects  map[string]*agentv1.Task
	revision uint64
	now      func() time.Time
	persist  Persister

	hmu      sync.RWMutex
	handlers map[int]Handler
	nextID   int
}

// Persister makes changes durable. Persist is called with every change in order, inside the
// write; it must not block, and returns a function that blocks until the change is durable.
// The write returns only after that, and subscribers hear of a change only after that too,
// except of a creation (see Memory.commit).
type Persister interface {
	Persist(ev Event) (wait func())
}

// Option configures a Memory.
type Option func(*Memory)

// WithPersister makes every write durable through p before it returns or is announced.
func WithPersister(p Persister) Option { return func(m *Memory) { m.persist = p } }

var (
	_ Store    = (*Memory)(nil)
	_ Notifier = (*Memory)(nil)
)

// NewMemory returns an empty store.
func NewMemory(opts ...Option) *Memory {
	m := &Memory{
		objects:  make(map[string]*agentv1.Task),
		handlers: make(map[int]Handler),
		now:      time.Now,
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Subscribe implements Notifier.
func (m *Memory) Subscribe(h Handler) func() {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	id := m.nextID
	m.nextID++
	m.handlers[id] = h
	return func() {
		m.hmu.Lock()
		defer m.hmu.Unlock()
		delete(m.handlers, id)
	}
}

// Restore puts a Task read back from durable storage into the store as it is, status
// included, without persisting or announcing it. It is meant for start-up, before anything
// subscribes.
func (m *Memory) Restore(task *agentv1.Task) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[task.Name]; ok {
		return apierrors.NewAlreadyExists(taskResource, task.Name)
	}
	obj := task.DeepCopy()
	obj.ResourceVersion = m.nextRevision()
	m.objects[obj.Name] = obj
	return nil
}

// Len returns the number of stored Tasks.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.objects)
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, name string) (*agentv1.Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	obj, ok := m.objects[name]
	if !ok {
		return nil, apierrors.NewNotFound(taskResource, name)
	}
	return obj.DeepCopy(), nil
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, task *agentv1.Task) error {
	if task.Name == "" {
		return apierrors.NewBadRequest("task name is required")
	}
	if task.ResourceVersion != "" {
		return apierrors.NewBadRequest("resourceVersion must not be set on create")
	}
	m.mu.Lock()
	if _, ok := m.objects[task.Name]; ok {
		m.mu.Unlock()
		return apierrors.NewAlreadyExists(taskResource, task.Name)
	}
	obj := task.DeepCopy()
	obj.ResourceVersion = m.nextRevision()
	obj.UID = types.UID(uuid.NewUUID())
	obj.Generation = 1
	if obj.CreationTimestamp.IsZero() {
		obj.CreationTimestamp = metav1.NewTime(m.now().UTC().Truncate(time.Second))
	}
	m.objects[obj.Name] = obj
	task.ObjectMeta = *obj.ObjectMeta.DeepCopy()
	m.commit(Event{Type: Added, Task: obj})
	return nil
}

// UpdateStatus implements Store. An empty resourceVersion writes unconditionally.
func (m *Memory) UpdateStatus(_ context.Context, task *agentv1.Task) error {
	m.mu.Lock()
	old, ok := m.objects[task.Name]
	if !ok {
		m.mu.Unlock()
		return apierrors.NewNotFound(taskResource, task.Name)
	}
	if task.ResourceVersion != "" && task.ResourceVersion != old.ResourceVersion {
		m.mu.Unlock()
		return apierrors.NewConflict(taskResource, task.Name,
			errStale(task.ResourceVersion, old.ResourceVersion))
	}
	obj := &agentv1.Task{
		TypeMeta:   old.TypeMeta,
		ObjectMeta: old.ObjectMeta, // shared with old: old is dropped below and never changed
		Spec:       old.Spec,
	}
	task.Status.DeepCopyInto(&obj.Status)
	obj.ResourceVersion = m.nextRevision()
	m.objects[obj.Name] = obj
	task.ResourceVersion = obj.ResourceVersion
	m.commit(Event{Type: Modified, Task: obj})
	return nil
}

// List implements Store.
func (m *Memory) List(_ context.Context) (*agentv1.TaskList, error) {
	m.mu.RLock()
	list := &agentv1.TaskList{
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatUint(m.revision, 10)},
		Items:    make([]agentv1.Task, 0, len(m.objects)),
	}
	for _, obj := range m.objects {
		list.Items = append(list.Items, *obj.DeepCopy())
	}
	m.mu.RUnlock()
	slices.SortFunc(list.Items, func(a, b agentv1.Task) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	obj, ok := m.objects[name]
	if !ok {
		m.mu.Unlock()
		return apierrors.NewNotFound(taskResource, name)
	}
	delete(m.objects, name)
	m.commit(Event{Type: Deleted, Task: obj})
	return nil
}

func (m *Memory) nextRevision() string {
	m.revision++
	return strconv.FormatUint(m.revision, 10)
}

// commit finishes a write: it is called with m.mu held and releases it. Without a
// persister, handlers run under the lock and so see changes in order. With one, the change is
// handed to it in order under the lock, the lock is released while the change becomes durable,
// and handlers hear of it afterwards (possibly out of order with other Tasks' changes; handlers
// only enqueue and read fresh state, so order does not matter to them).
//
// A creation is announced at once, under the lock, while it becomes durable: whatever a
// subscriber does with a new Task (mark it Running, fail it) is a later write, persisted after
// the creation, so no change is ever durable without the Task's creation, and nothing runs
// before its Running status is durable. This saves a task one journal commit on its way to
// execution. Create itself still returns only once the creation is durable.
func (m *Memory) commit(ev Event) {
	if m.persist == nil {
		m.notify(ev)
		m.mu.Unlock()
		return
	}
	wait := m.persist.Persist(ev)
	if ev.Type == Added {
		m.notify(ev)
		m.mu.Unlock()
		wait()
		return
	}
	m.mu.Unlock()
	wait()
	m.notify(ev)
}

func (m *Memory) notify(ev Event) {
	m.hmu.RLock()
	defer m.hmu.RUnlock()
	for _, h := range m.handlers {
		h(ev)
	}
}

type staleError struct{ sent, stored string }

func (e staleError) Error() string {
	return "resourceVersion " + e.sent + " is stale (stored: " + e.stored + ")"
}

func errStale(sent, stored string) error { return staleError{sent, stored} }
