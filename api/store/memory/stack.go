package memory

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var stackResource = agentv1.GroupVersion.WithResource("stacks").GroupResource()

// StackStore is an in-memory store.StackStore with change notification, kept in memory only
// (see the package documentation for why). The zero value is not usable: call NewStackStore.
type StackStore struct {
	mu       sync.Mutex
	objects  map[string]*agentv1.Stack
	revision uint64
	now      func() time.Time

	hmu      sync.RWMutex
	handlers map[int]store.StackHandler
	nextID   int
}

var (
	_ store.StackStore    = (*StackStore)(nil)
	_ store.StackNotifier = (*StackStore)(nil)
)

// NewStackStore returns an empty Stack store.
func NewStackStore() *StackStore {
	return &StackStore{objects: map[string]*agentv1.Stack{}, handlers: map[int]store.StackHandler{}, now: time.Now}
}

// Subscribe implements store.StackNotifier. Handlers run inside the write, in order.
func (m *StackStore) Subscribe(h store.StackHandler) func() {
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

// Get implements store.StackStore.
func (m *StackStore) Get(_ context.Context, name string) (*agentv1.Stack, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[name]
	if !ok {
		return nil, apierrors.NewNotFound(stackResource, name)
	}
	return obj.DeepCopy(), nil
}

// Create implements store.StackStore.
func (m *StackStore) Create(_ context.Context, stack *agentv1.Stack) error {
	if stack.Name == "" {
		return apierrors.NewBadRequest("stack name is required")
	}
	if stack.ResourceVersion != "" {
		return apierrors.NewBadRequest("resourceVersion must not be set on create")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[stack.Name]; ok {
		return apierrors.NewAlreadyExists(stackResource, stack.Name)
	}
	obj := &agentv1.Stack{TypeMeta: stack.TypeMeta}
	stack.ObjectMeta.DeepCopyInto(&obj.ObjectMeta)
	obj.Spec = stack.Spec
	obj.ResourceVersion = m.nextRevision()
	obj.UID = types.UID(uuid.NewUUID())
	obj.Generation = 1
	if obj.CreationTimestamp.IsZero() {
		obj.CreationTimestamp = metav1.NewTime(m.now().UTC().Truncate(time.Second))
	}
	m.objects[obj.Name] = obj
	stack.ObjectMeta = *obj.ObjectMeta.DeepCopy()
	m.notify(store.StackEvent{Type: store.Added, Stack: obj})
	return nil
}

// current returns the stored Stack stack writes to, checking its resourceVersion. Called with
// m.mu held.
func (m *StackStore) current(stack *agentv1.Stack) (*agentv1.Stack, error) {
	old, ok := m.objects[stack.Name]
	if !ok {
		return nil, apierrors.NewNotFound(stackResource, stack.Name)
	}
	if stack.ResourceVersion != "" && stack.ResourceVersion != old.ResourceVersion {
		return nil, apierrors.NewConflict(stackResource, stack.Name, errStale(stack.ResourceVersion, old.ResourceVersion))
	}
	return old, nil
}

// Update implements store.StackStore.
func (m *StackStore) Update(_ context.Context, stack *agentv1.Stack) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, err := m.current(stack)
	if err != nil {
		return err
	}
	obj := old.DeepCopy()
	obj.Spec = stack.Spec
	obj.Labels = maps.Clone(stack.Labels)
	obj.Annotations = maps.Clone(stack.Annotations)
	if !equality.Semantic.DeepEqual(old.Spec, obj.Spec) {
		obj.Generation++
	}
	obj.ResourceVersion = m.nextRevision()
	m.objects[obj.Name] = obj
	stack.ResourceVersion, stack.Generation = obj.ResourceVersion, obj.Generation
	m.notify(store.StackEvent{Type: store.Modified, Stack: obj})
	return nil
}

// UpdateStatus implements store.StackStore.
func (m *StackStore) UpdateStatus(_ context.Context, stack *agentv1.Stack) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, err := m.current(stack)
	if err != nil {
		return err
	}
	obj := &agentv1.Stack{TypeMeta: old.TypeMeta, ObjectMeta: old.ObjectMeta, Spec: old.Spec}
	stack.Status.DeepCopyInto(&obj.Status)
	obj.ResourceVersion = m.nextRevision()
	m.objects[obj.Name] = obj
	stack.ResourceVersion = obj.ResourceVersion
	m.notify(store.StackEvent{Type: store.Modified, Stack: obj})
	return nil
}

// List implements store.StackStore.
func (m *StackStore) List(_ context.Context) (*agentv1.StackList, error) {
	m.mu.Lock()
	list := &agentv1.StackList{
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatUint(m.revision, 10)},
		Items:    make([]agentv1.Stack, 0, len(m.objects)),
	}
	for _, obj := range m.objects {
		list.Items = append(list.Items, *obj.DeepCopy())
	}
	m.mu.Unlock()
	slices.SortFunc(list.Items, func(a, b agentv1.Stack) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// Delete implements store.StackStore.
func (m *StackStore) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[name]
	if !ok {
		return apierrors.NewNotFound(stackResource, name)
	}
	delete(m.objects, name)
	m.notify(store.StackEvent{Type: store.Deleted, Stack: obj})
	return nil
}

func (m *StackStore) nextRevision() string {
	m.revision++
	return strconv.FormatUint(m.revision, 10)
}

func (m *StackStore) notify(ev store.StackEvent) {
	m.hmu.RLock()
	defer m.hmu.RUnlock()
	for _, h := range m.handlers {
		h(ev)
	}
}
