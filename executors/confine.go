package executors

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// DefaultMaxFileBytes is the size limit of the file tasks when their Config
// sets none: 16 MiB.
const DefaultMaxFileBytes = 16 << 20

// FileConfig configures the file task executors ([NewFileWrite],
// [NewEnvUpdate]).
type FileConfig struct {
	// Roots are the directories the tasks may change, as absolute paths.
	// A task path must lie inside one of them; nothing outside is touched.
	Roots []string
	// MaxBytes caps the size of a file read or written; default
	// DefaultMaxFileBytes.
	MaxBytes int64
}

// fileTask is what the file task executors (FILE_WRITE, ENV_UPDATE) share: the roots and
// the size limit of a [FileConfig].
type fileTask struct {
	roots    *fileRoots
	maxBytes int64
	hook     writeHook // tests only
}

func newFileTask(cfg FileConfig) (fileTask, error) {
	roots, err := newFileRoots(cfg.Roots)
	if err != nil {
		return fileTask{}, err
	}
	return fileTask{roots: roots, maxBytes: maxBytesOrDefault(cfg.MaxBytes)}, nil
}

// fileRoots confines task paths to the configured roots.
//
// A path is matched to a root lexically (the most specific root that
// contains it); every file system operation then goes through an [os.Root]
// opened on that root, so that "..", symbolic links and concurrent renames
// cannot lead outside it.
type fileRoots struct {
	roots []string // cleaned absolute paths, longest first
}

func newFileRoots(roots []string) (*fileRoots, error) {
	clean := make([]string, 0, len(roots))
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("file root %q is not an absolute path", r)
		}
		clean = append(clean, filepath.Clean(r))
	}
	slices.SortFunc(clean, func(a, b string) int { return len(b) - len(a) })
	return &fileRoots{roots: slices.Compact(clean)}, nil
}

// String lists the roots for messages.
func (r *fileRoots) String() string {
	if len(r.roots) == 0 {
		return "none"
	}
	sorted := slices.Sorted(slices.Values(r.roots))
	return strings.Join(sorted, ", ")
}

// locate checks that path (the payload field named field) is absolute and
// lexically inside a root, and returns the cleaned path, its root and the
// path relative to that root. Every error is permanent.
func (r *fileRoots) locate(field, path string) (clean, root, rel string, err error) {
	switch {
	case path == "":
		return "", "", "", InvalidPayloadf("field %q is required", field)
	case strings.IndexByte(path, 0) >= 0:
		return "", "", "", InvalidPayloadf("field %q contains a NUL byte", field)
	case !filepath.IsAbs(path):
		return "", "", "", InvalidPayloadf("%s %q is not an absolute path", field, path)
	}
	clean = filepath.Clean(path)
	for _, root := range r.roots {
		rel, err := filepath.Rel(root, clean)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if rel == "." {
			return "", "", "", Refusedf("%s %q is a file root itself, not a file inside it", field, path)
		}
		return clean, root, rel, nil
	}
	return "", "", "", Refusedf("%s %q is outside the file roots (AGENT_FILE_ROOTS: %s)", field, path, r)
}

// openRoot opens a configured root.
func openRoot(root string) (*os.Root, error) {
	r, err := os.OpenRoot(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("file root %s (AGENT_FILE_ROOTS) does not exist", root)
	}
	if err != nil {
		return nil, fmt.Errorf("open file root %s (AGENT_FILE_ROOTS): %w", root, unwrapPathError(err))
	}
	return r, nil
}

// errPathEscapes is the error os.Root methods return for a name that leads
// outside the root: the os package does not export it, so it is taken from
// a call that fails lexically (an absolute name) without touching anything.
var errPathEscapes = sync.OnceValue(func() error {
	r, err := os.OpenRoot("/")
	if err != nil {
		return nil
	}
	defer r.Close()
	_, err = r.Lstat("/")
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return nil
})

// isEscape reports whether err is an os.Root refusal to leave its root.
func isEscape(err error) bool {
	target := errPathEscapes()
	return target != nil && errors.Is(err, target)
}

// unwrapPathError drops the *fs.PathError around err: its path is relative to
// a root and would only confuse a message that names the full path.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// escapeError is the refusal for a path that leads outside its root.
func escapeError(field, path, root string) error {
	return Refusedf("%s %q leaves the file root %s (through \"..\" or a symbolic link that points outside it or is absolute)", field, path, root)
}

// confinedFile is a task's file: its directory is open inside a root, and
// every operation on the file goes through that directory.
type confinedFile struct {
	field string   // the payload field that named the file, for messages
	path  string   // the cleaned absolute path, for messages and results
	root  string   // the root it lies in
	dir   *os.Root // the file's parent directory
	name  string   // the file's name in dir
}

// openFile opens the directory of path (payload field field) inside its root,
// creating missing parent directories (0755) when mkdirParents is set.
func (r *fileRoots) openFile(field, path string, mkdirParents bool) (*confinedFile, error) {
	clean, root, rel, err := r.locate(field, path)
	if err != nil {
		return nil, err
	}
	rt, err := openRoot(root)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	f := &confinedFile{field: field, path: clean, root: root, name: filepath.Base(rel)}
	dirRel := filepath.Dir(rel)
	if mkdirParents && dirRel != "." {
		err := rt.MkdirAll(dirRel, 0o755)
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("create the parent directories of %s: a parent is not a directory", clean)
		}
		if err != nil {
			return nil, f.wrap("create the parent directories of", err)
		}
	}
	dir, err := rt.OpenRoot(dirRel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("directory %s does not exist", filepath.Dir(clean))
		}
		return nil, f.wrap("open the directory of", err)
	}
	f.dir = dir
	return f, nil
}

// Close releases the directory.
func (f *confinedFile) Close() error { return f.dir.Close() }

// wrap turns an error of an operation on f into a task error: a refusal when
// the operation would have left the root.
func (f *confinedFile) wrap(op string, err error) error {
	if isEscape(err) {
		return escapeError(f.field, f.path, f.root)
	}
	return fmt.Errorf("%s %s: %w", op, f.path, unwrapPathError(err))
}

// stat returns the existing file's information, or nil if there is none. A
// symbolic link, a directory or any other non-regular file is refused: the
// file tasks replace regular files only.
func (f *confinedFile) stat() (fs.FileInfo, error) {
	fi, err := f.dir.Lstat(f.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, f.wrap("stat", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, Refusedf("%s %q is a symbolic link: refusing to replace it (name its target instead)", f.field, f.path)
	case fi.IsDir():
		return nil, Refusedf("%s %q is a directory", f.field, f.path)
	case !fi.Mode().IsRegular():
		return nil, Refusedf("%s %q is not a regular file", f.field, f.path)
	}
	return fi, nil
}

// read returns the content of the existing regular file, refusing one larger
// than limit bytes.
func (f *confinedFile) read(limit int64) ([]byte, error) {
	// O_NONBLOCK: a FIFO swapped in after stat must not block the open.
	file, err := f.dir.OpenFile(f.name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, f.wrap("open", err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, f.wrap("stat", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, Refusedf("%s %q is not a regular file", f.field, f.path)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, larger than the limit of %d bytes (AGENT_MAX_FILE_BYTES)", f.path, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, f.wrap("read", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than the limit of %d bytes (AGENT_MAX_FILE_BYTES)", f.path, limit)
	}
	return data, nil
}

// Steps of the atomic write, for tests that fail or crash at each one.
const (
	stepCreated = "created" // the temporary file exists
	stepWritten = "written" // the content is written, not yet synced
	stepSynced  = "synced"  // content, mode and owner are on disk; not yet renamed
	stepRenamed = "renamed" // the target is replaced; its directory not yet synced
)

// writeHook, when set, runs after each step of an atomic write; an error it
// returns fails the write at that step. Tests only.
type writeHook func(step string) error

// tempMarker names the temporary files of atomic writes: ".<name>.letsbe-tmp-<random>".
const tempMarker = ".letsbe-tmp-"

// tempPrefix is the name prefix of f's temporary files. Long names are cut
// so that the temporary name stays within NAME_MAX.
func (f *confinedFile) tempPrefix() string {
	base := f.name
	if len(base) > 200 {
		base = base[:200]
	}
	return "." + base + tempMarker
}

// writeAtomic replaces the file with data: a temporary file in the same
// directory is written, synced, given perm (and uid/gid when owner is set),
// renamed over the target, and the directory is synced. A crash at any point
// leaves the old file or the new one, never a mix; the temporary file is
// removed on every error.
//
// Callers hold the file's lock (lockPath), which also makes it safe to clear
// temporary files left behind by a crash.
func (f *confinedFile) writeAtomic(data []byte, perm fs.FileMode, owner *fileOwner, hook writeHook) (err error) {
	f.removeStaleTemps()
	step := func(name string) error {
		if hook == nil {
			return nil
		}
		return hook(name)
	}

	tmp, tmpName, err := f.createTemp()
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = tmp.Close()
		}
		if tmpName != "" {
			_ = f.dir.Remove(tmpName)
		}
	}()
	if err := step(stepCreated); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return f.wrap("write a temporary file for", err)
	}
	if err := step(stepWritten); err != nil {
		return err
	}
	// Owner first: chown clears the set-user-ID and set-group-ID bits.
	if owner != nil && !owner.owns(tmp) {
		if err := tmp.Chown(owner.uid, owner.gid); err != nil {
			return fmt.Errorf("keep the owner (%d:%d) of %s: %w", owner.uid, owner.gid, f.path, unwrapPathError(err))
		}
	}
	if err := tmp.Chmod(perm); err != nil {
		return f.wrap("set the mode of a temporary file for", err)
	}
	if err := tmp.Sync(); err != nil {
		return f.wrap("sync a temporary file for", err)
	}
	closed = true
	if err := tmp.Close(); err != nil {
		return f.wrap("close a temporary file for", err)
	}
	if err := step(stepSynced); err != nil {
		return err
	}
	if err := f.dir.Rename(tmpName, f.name); err != nil {
		return f.wrap("replace", err)
	}
	// From here on the new content is in place: an error is reported, but
	// there is no temporary file left to remove.
	tmpName = ""
	if err := step(stepRenamed); err != nil {
		return err
	}
	return f.syncDir()
}

// createTemp creates a new temporary file next to the target, mode 0600.
func (f *confinedFile) createTemp() (*os.File, string, error) {
	prefix := f.tempPrefix()
	for range 10 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		name := prefix + hex.EncodeToString(b[:])
		tmp, err := f.dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", f.wrap("create a temporary file for", err)
		}
		return tmp, name, nil
	}
	return nil, "", fmt.Errorf("create a temporary file for %s: too many name collisions", f.path)
}

// syncDir makes the rename durable.
func (f *confinedFile) syncDir() error {
	d, err := f.dir.Open(".")
	if err != nil {
		return f.wrap("open the directory of", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return f.wrap("sync the directory of", err)
	}
	return nil
}

// removeStaleTemps removes temporary files of f left by a crashed write.
// Failures are ignored: a leftover costs only disk space.
func (f *confinedFile) removeStaleTemps() {
	entries, err := fs.ReadDir(f.dir.FS(), ".")
	if err != nil {
		return
	}
	prefix := f.tempPrefix()
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			_ = f.dir.Remove(e.Name())
		}
	}
}

// fileOwner is the owner to keep when replacing a file.
type fileOwner struct{ uid, gid int }

// ownerOf returns the owner of an existing file, or nil for a new one.
func ownerOf(fi fs.FileInfo) *fileOwner {
	if fi == nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	return &fileOwner{uid: int(st.Uid), gid: int(st.Gid)}
}

// owns reports whether f already has this owner (a new file may not: its
// group can come from a set-group-ID directory).
func (o *fileOwner) owns(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	got := ownerOf(fi)
	return got != nil && *got == *o
}

// permOf returns the permission bits of an existing file that a replacement
// keeps: never set-user-ID, set-group-ID or sticky, so that new content never
// inherits the privileges the old file had (a root-owned setuid program
// replaced by a task would otherwise run as root for anyone).
func permOf(fi fs.FileInfo) fs.FileMode {
	return fi.Mode() & fs.ModePerm
}

// lockKey identifies the file for pathLocks by its parent directory's device
// and inode and its name, so that two names for one file (a symbolic link to a
// directory inside the root, a bind mount) share one lock; the path when the
// directory cannot be inspected.
func (f *confinedFile) lockKey() string {
	fi, err := f.dir.Stat(".")
	if err != nil {
		return f.path
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return f.path
	}
	return fmt.Sprintf("%d:%d/%s", st.Dev, st.Ino, f.name)
}

// pathLocks serialises the file tasks on one path within the agent, so that
// a read-modify-write (ENV_UPDATE) never loses a concurrent change.
var pathLocks = keyedMutex{locks: map[string]*keyedLock{}}

type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks key and returns its unlock function.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return k.unlocker(key, l)
}

// tryLock locks key if nobody holds it, and returns its unlock function; ok is false (and
// nothing is locked) when the key is held.
func (k *keyedMutex) tryLock(key string) (unlock func(), ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks[key] != nil {
		return nil, false
	}
	l := &keyedLock{refs: 1}
	l.mu.Lock()
	k.locks[key] = l
	return k.unlocker(key, l), true
}

// unlocker returns the unlock function of l, held for key: it unlocks l and forgets it once
// nobody else holds or waits for it.
func (k *keyedMutex) unlocker(key string, l *keyedLock) func() {
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

func maxBytesOrDefault(n int64) int64 {
	if n <= 0 {
		return DefaultMaxFileBytes
	}
	return n
}
