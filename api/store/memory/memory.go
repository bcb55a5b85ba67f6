package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var taskResource = agentv1.GroupVersion.WithResource("tasks").GroupResource()

// Store is an in-memory Store with change notification. The zero value is not usable: call
// New.
type Store struct {
	mu       sync.RWMutex
	objects  map[string]*agentv1.Task
	revision uint64
	now      func() time.Time
	persist  Persister
	// creating holds the Tasks whose creation is announced but not durable yet.
	creating map[string]*creation

	subs subscribers[store.Event]
}

// Persister makes changes durable. Persist is called with every change in order, inside the
// write; it must not block, and returns a function that blocks until the change is durable, or
// returns why it could not be made so. The write returns only after that, and subscribers hear
// of a change only after that too, except of a creation (see Store.commit).
type Persister interface {
	Persist(ev store.Event) (wait func() error)
}

// creation is a creation announced before it is durable: writes to its Task wait for it.
// The first of them, if it comes within creationLinger, is persisted as the creation itself
// (claimed), so that a new Task and its first status (Running, say) take one write.
type creation struct {
	ev      store.Event   // the creation, to persist when no write claims it in time
	claimed bool          // under Store.mu: a write (or the linger's end) persists it
	claim   chan struct{} // closed when a write claimed it
	done    chan struct{}
	err     error // set before done is closed
}

// creationLinger is how long a creation waits for a first status write to persist it with.
// Subscribers (the controllers) write one within microseconds of the announcement; one that
// does not come in time costs the creation a write of its own, as without the wait.
const creationLinger = 2 * time.Millisecond

// Option configures a Store.
type Option func(*Store)

// WithPersister makes every write durable through p before it returns or is announced.
func WithPersister(p Persister) Option { return func(m *Store) { m.persist = p } }

var (
	_ store.Store    = (*Store)(nil)
	_ store.Notifier = (*Store)(nil)
	_ store.InPlace  = (*Store)(nil)
)

// New returns an empty store.
func New(opts ...Option) *Store {
	m := &Store{
		objects:  make(map[string]*agentv1.Task),
		creating: make(map[string]*creation),
		now:      time.Now,
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Subscribe implements Notifier.
func (m *Store) Subscribe(h store.Handler) func() {
	return m.subs.add(h)
}

// Restore puts a Task read back from durable storage into the store as it is, status
// included, without persisting or announcing it. It is meant for start-up, before anything
// subscribes.
func (m *Store) Restore(task *agentv1.Task) error {
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
func (m *Store) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.objects)
}

// Get implements Store.
func (m *Store) Get(_ context.Context, name string) (*agentv1.Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	obj, ok := m.objects[name]
	if !ok {
		return nil, apierrors.NewNotFound(taskResource, name)
	}
	return obj.DeepCopy(), nil
}

// View implements store.InPlace. The stored Tasks are never changed, only replaced by the
// next write, so the one returned stays as it was.
func (m *Store) View(_ context.Context, name string) (*agentv1.Task, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	obj, ok := m.objects[name]
	if !ok {
		return nil, apierrors.NewNotFound(taskResource, name)
	}
	return obj, nil
}

// ViewList implements store.InPlace.
func (m *Store) ViewList(_ context.Context) ([]*agentv1.Task, error) {
	m.mu.RLock()
	out := make([]*agentv1.Task, 0, len(m.objects))
	for _, obj := range m.objects {
		out = append(out, obj)
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b *agentv1.Task) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// MutateStatus implements store.InPlace: mutate changes a copy of the stored status (the
// metadata and spec are shared with the stored Task, and must not be changed), which
// replaces the stored one as UpdateStatus does, with the same durability.
func (m *Store) MutateStatus(ctx context.Context, name string, mutate func(*agentv1.Task) bool) (*agentv1.Task, error) {
	m.mu.Lock()
	old, ok := m.objects[name]
	if !ok {
		m.mu.Unlock()
		return nil, apierrors.NewNotFound(taskResource, name)
	}
	obj := &agentv1.Task{TypeMeta: old.TypeMeta, ObjectMeta: old.ObjectMeta, Spec: old.Spec}
	old.Status.DeepCopyInto(&obj.Status)
	if !mutate(obj) {
		m.mu.Unlock()
		return old, nil
	}
	obj.ResourceVersion = m.nextRevision()
	compact(obj)
	m.objects[name] = obj
	if err := m.commit(store.Event{Type: store.Modified, Task: obj, Deferrable: store.IsDeferrable(ctx)}); err != nil {
		return nil, err
	}
	return obj, nil
}

// Create implements Store. With a persister, a creation that cannot be made durable is
// undone (its Task is deleted again, and subscribers hear so) and Create returns an error
// wrapping ErrNotDurable.
func (m *Store) Create(ctx context.Context, task *agentv1.Task) error {
	return m.create(ctx, task, false)
}

// CreateOwned implements store.InPlace: Create, keeping task itself as the stored Task.
func (m *Store) CreateOwned(ctx context.Context, task *agentv1.Task) error {
	return m.create(ctx, task, true)
}

func (m *Store) create(_ context.Context, task *agentv1.Task, owned bool) error {
	if err := checkNew(task, "task"); err != nil {
		return err
	}
	m.mu.Lock()
	if _, ok := m.objects[task.Name]; ok {
		m.mu.Unlock()
		return apierrors.NewAlreadyExists(taskResource, task.Name)
	}
	obj := task
	if !owned {
		obj = task.DeepCopy()
	}
	created(&obj.ObjectMeta, m.nextRevision(), m.now())
	compact(obj)
	m.objects[obj.Name] = obj
	if !owned {
		setCreated(&task.ObjectMeta, obj.ObjectMeta)
	}
	return m.commit(store.Event{Type: store.Added, Task: obj})
}

// UpdateStatus implements Store. An empty resourceVersion writes unconditionally. With a
// persister, a change that cannot be made durable returns an error wrapping ErrNotDurable; it
// is still kept and announced (the persister retries it when it can: see Persister), except
// when the Task's own creation failed, which undoes the Task.
func (m *Store) UpdateStatus(ctx context.Context, task *agentv1.Task) error {
	m.mu.Lock()
	old, err := current(m.objects, taskResource, task)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	obj := &agentv1.Task{
		TypeMeta:   old.TypeMeta,
		ObjectMeta: old.ObjectMeta, // shared with old: old is dropped below and never changed
		Spec:       old.Spec,
	}
	task.Status.DeepCopyInto(&obj.Status)
	obj.ResourceVersion = m.nextRevision()
	compact(obj)
	m.objects[obj.Name] = obj
	task.ResourceVersion = obj.ResourceVersion
	return m.commit(store.Event{Type: store.Modified, Task: obj, Deferrable: store.IsDeferrable(ctx)})
}

// compact drops what a Task whose final report the orchestrator accepted no longer needs: its
// payload and its result (up to megabytes each). Type, phase, error, times and events stay for
// inspection, so the memory of finished Tasks does not depend on their size.
func compact(obj *agentv1.Task) {
	if !obj.Status.Report.FinalReported {
		return
	}
	obj.Spec.Payload = nil
	obj.Status.Result = nil
}

// List implements Store.
func (m *Store) List(_ context.Context) (*agentv1.TaskList, error) {
	m.mu.RLock()
	list := &agentv1.TaskList{
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatUint(m.revision, 10)},
		Items:    copies(m.objects),
	}
	m.mu.RUnlock()
	byName(list.Items)
	return list, nil
}

// Delete implements Store.
func (m *Store) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	obj, ok := m.objects[name]
	if !ok {
		m.mu.Unlock()
		return apierrors.NewNotFound(taskResource, name)
	}
	delete(m.objects, name)
	return m.commit(store.Event{Type: store.Deleted, Task: obj})
}

func (m *Store) nextRevision() string {
	m.revision++
	return strconv.FormatUint(m.revision, 10)
}

// commit finishes a write: it is called with m.mu held and releases it. Without a
// persister, handlers run under the lock and so see changes in order. With one, the change is
// handed to it in order under the lock, the lock is released while the change becomes durable,
// and handlers hear of it afterwards (possibly out of order with other Tasks' changes; handlers
// only enqueue and read fresh state, so order does not matter to them).
//
// A creation is announced at once, under the lock, before it is durable: whatever a subscriber
// does with a new Task (mark it Running, fail it) is a later write, and such a write returns
// only once the creation is durable, failing with it if the creation fails. The first such
// write within creationLinger is handed to the persister as the creation itself (the Task with
// that status, one write instead of two); without one, the creation is persisted alone when
// the linger ends. So no change is ever durable without the Task's creation, and nothing runs
// before its creation and its Running status are durable. Create itself returns only once the
// creation is durable; a creation that fails is undone: the Task is deleted (and the deletion
// persisted, so a later change that the persister did take is removed too) and subscribers hear
// of the deletion.
func (m *Store) commit(ev store.Event) error {
	if m.persist == nil {
		m.subs.notify(ev)
		m.mu.Unlock()
		return nil
	}
	name := ev.Task.Name
	if ev.Type == store.Added {
		c := &creation{ev: ev, claim: make(chan struct{}), done: make(chan struct{})}
		m.creating[name] = c
		m.subs.notify(ev)
		m.mu.Unlock()
		linger := time.NewTimer(creationLinger)
		select {
		case <-c.claim:
			linger.Stop()
		case <-linger.C:
			m.mu.Lock()
			claimed := c.claimed
			c.claimed = true
			var wait func() error
			if !claimed {
				wait = m.persist.Persist(ev)
			}
			m.mu.Unlock()
			if !claimed {
				c.err = wait()
				close(c.done)
			}
		}
		<-c.done
		m.mu.Lock()
		delete(m.creating, name)
		var undo *store.Event
		if c.err != nil {
			if cur, ok := m.objects[name]; ok && cur.UID == ev.Task.UID {
				delete(m.objects, name)
				undo = &store.Event{Type: store.Deleted, Task: cur}
				m.persist.Persist(*undo) // not waited for: nothing of the Task is kept anyway
			}
		}
		m.mu.Unlock()
		if undo != nil {
			m.subs.notify(*undo)
		}
		return notDurable(c.err)
	}
	c := m.creating[name]
	var waitCreated func() error
	if c != nil && !c.claimed {
		c.claimed = true
		close(c.claim)
		if ev.Type == store.Modified {
			// The Task's first status write: persisted as its creation, in one write.
			created := ev
			created.Type = store.Added
			wait := m.persist.Persist(created)
			m.mu.Unlock()
			c.err = wait()
			close(c.done)
			m.subs.notify(ev)
			return notDurable(c.err)
		}
		waitCreated = m.persist.Persist(c.ev) // a deletion: the creation goes first
	}
	wait := m.persist.Persist(ev)
	m.mu.Unlock()
	if waitCreated != nil {
		c.err = waitCreated()
		close(c.done)
	}
	if c != nil {
		<-c.done
		if c.err != nil {
			return notDurable(c.err)
		}
	}
	err := wait()
	m.subs.notify(ev)
	return notDurable(err)
}

// notDurable wraps the error of a change that could not be made durable in ErrNotDurable.
func notDurable(err error) error {
	if err == nil || errors.Is(err, store.ErrNotDurable) {
		return err
	}
	return fmt.Errorf("%w: %w", store.ErrNotDurable, err)
}
