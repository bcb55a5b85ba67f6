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
	handlers map[int]Handler
	nextID   int
	now      func() time.Time
}

var (
	_ Store    = (*Memory)(nil)
	_ Notifier = (*Memory)(nil)
)

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{
		objects:  make(map[string]*agentv1.Task),
		handlers: make(map[int]Handler),
		now:      time.Now,
	}
}

// Subscribe implements Notifier.
func (m *Memory) Subscribe(h Handler) func() {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.nextID
	m.nextID++
	m.handlers[id] = h
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		delete(m.handlers, id)
	}
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
	defer m.mu.Unlock()
	if _, ok := m.objects[task.Name]; ok {
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
	m.notify(Event{Type: Added, Task: obj})
	return nil
}

// UpdateStatus implements Store. An empty resourceVersion writes unconditionally.
func (m *Memory) UpdateStatus(_ context.Context, task *agentv1.Task) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.objects[task.Name]
	if !ok {
		return apierrors.NewNotFound(taskResource, task.Name)
	}
	if task.ResourceVersion != "" && task.ResourceVersion != old.ResourceVersion {
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
	m.notify(Event{Type: Modified, Task: obj})
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
	defer m.mu.Unlock()
	obj, ok := m.objects[name]
	if !ok {
		return apierrors.NewNotFound(taskResource, name)
	}
	delete(m.objects, name)
	m.notify(Event{Type: Deleted, Task: obj})
	return nil
}

func (m *Memory) nextRevision() string {
	m.revision++
	return strconv.FormatUint(m.revision, 10)
}

// notify runs with m.mu held, so handlers see changes in order.
func (m *Memory) notify(ev Event) {
	for _, h := range m.handlers {
		h(ev)
	}
}

type staleError struct{ sent, stored string }

func (e staleError) Error() string {
	return "resourceVersion " + e.sent + " is stale (stored: " + e.stored + ")"
}

func errStale(sent, stored string) error { return staleError{sent, stored} }
