package executors

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultStackRevisions is how many revisions of a project are kept when the config sets
// none.
const DefaultStackRevisions = 5

// stackRevision is a deployed revision of a Compose project, as kept in
// <state dir>/stacks/<project>/revisions/<n>.json (0600): its files and each service's image
// ID, so that a rollback uses the exact images even if a tag moved since.
type stackRevision struct {
	Revision    int               `json:"revision"`
	Hash        string            `json:"hash"`
	ComposePath string            `json:"compose_path"`
	ProjectDir  string            `json:"project_dir"`
	Created     time.Time         `json:"created"`
	Files       []stackFile       `json:"files"`
	Images      map[string]string `json:"images"` // service -> image ID
}

// stackIndex is <state dir>/stacks/<project>/index.json: the last known good revision and the
// next number.
type stackIndex struct {
	LastGood int `json:"last_good"`
	Next     int `json:"next"`
}

// stackState is the state directory of one project. Callers hold the project's lock.
type stackState struct {
	dir  string // <state dir>/stacks/<project>
	keep int
}

func newStackState(stateDir, project string, keep int) (*stackState, error) {
	if stateDir == "" {
		return nil, errors.New("no state directory (AGENT_STATE_DIR) for the stack revisions")
	}
	if project == "" || strings.ContainsAny(project, "/\x00") || project == "." || project == ".." {
		return nil, fmt.Errorf("project name %q cannot name a state directory", project)
	}
	if keep <= 0 {
		keep = DefaultStackRevisions
	}
	return &stackState{dir: filepath.Join(stateDir, "stacks", project), keep: keep}, nil
}

func (s *stackState) index() (stackIndex, error) {
	var idx stackIndex
	data, err := os.ReadFile(filepath.Join(s.dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return stackIndex{Next: 1}, nil
	}
	if err != nil {
		return idx, fmt.Errorf("read stack state: %w", err)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return idx, fmt.Errorf("read stack state %s: %w", filepath.Join(s.dir, "index.json"), err)
	}
	if idx.Next <= idx.LastGood {
		idx.Next = idx.LastGood + 1
	}
	return idx, nil
}

func (s *stackState) revisionPath(n int) string {
	return filepath.Join(s.dir, "revisions", strconv.Itoa(n)+".json")
}

// revision reads revision n; nil if it is not kept.
func (s *stackState) revision(n int) (*stackRevision, error) {
	if n <= 0 {
		return nil, nil
	}
	data, err := os.ReadFile(s.revisionPath(n))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stack revision %d: %w", n, err)
	}
	var rev stackRevision
	if err := json.Unmarshal(data, &rev); err != nil {
		return nil, fmt.Errorf("read stack revision %d: %w", n, err)
	}
	return &rev, nil
}

// revisions lists the kept revision numbers, oldest first.
func (s *stackState) revisions() ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "revisions"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list stack revisions: %w", err)
	}
	var out []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".json")); err == nil && strings.HasSuffix(e.Name(), ".json") {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// saveGood records rev as the last known good revision and drops the oldest beyond keep.
func (s *stackState) saveGood(rev *stackRevision) error {
	if err := os.MkdirAll(filepath.Join(s.dir, "revisions"), 0o700); err != nil {
		return fmt.Errorf("create stack state: %w", err)
	}
	_ = os.Chmod(s.dir, 0o700)
	data, err := json.Marshal(rev)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.revisionPath(rev.Revision), data); err != nil {
		return err
	}
	idx, err := s.index()
	if err != nil {
		return err
	}
	idx.LastGood = rev.Revision
	idx.Next = max(idx.Next, rev.Revision+1)
	data, _ = json.Marshal(idx)
	if err := writeFileAtomic(filepath.Join(s.dir, "index.json"), data); err != nil {
		return err
	}
	kept, err := s.revisions()
	if err != nil {
		return err
	}
	for len(kept) > s.keep {
		if kept[0] != idx.LastGood {
			_ = os.Remove(s.revisionPath(kept[0]))
		}
		kept = kept[1:]
	}
	return nil
}

// previous returns the newest kept revision older than n; nil if there is none.
func (s *stackState) previous(n int) (*stackRevision, error) {
	kept, err := s.revisions()
	if err != nil {
		return nil, err
	}
	for i := len(kept) - 1; i >= 0; i-- {
		if kept[i] < n {
			return s.revision(kept[i])
		}
	}
	return nil, nil
}

// pinFile writes the override file that pins each service of rev to its recorded image ID,
// and returns its path.
func (s *stackState) pinFile(rev *stackRevision) (string, error) {
	if len(rev.Images) == 0 {
		return "", nil
	}
	var b strings.Builder
	b.WriteString("services:\n")
	for _, svc := range slices.Sorted(maps.Keys(rev.Images)) {
		// JSON strings are YAML strings.
		name, _ := json.Marshal(svc)
		img, _ := json.Marshal(rev.Images[svc])
		fmt.Fprintf(&b, "  %s:\n    image: %s\n    pull_policy: never\n", name, img)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return "", fmt.Errorf("create stack state: %w", err)
	}
	path := filepath.Join(s.dir, "pin.yml")
	return path, writeFileAtomic(path, []byte(b.String()))
}

// writeFileAtomic writes an agent state file (0600): temporary file, fsync, rename.
func writeFileAtomic(path string, data []byte) error {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// restoreFiles puts the files of rev back in place, each atomically, inside the roots.
func restoreFiles(roots *fileRoots, rev *stackRevision) error {
	for _, f := range rev.Files {
		cf, err := roots.openFile("revision file", f.Path, true)
		if err != nil {
			return err
		}
		unlock := pathLocks.lock(cf.path)
		fi, err := cf.stat()
		var owner *fileOwner
		if err == nil {
			owner = ownerOf(fi)
			if fi != nil {
				if cur, rerr := cf.read(int64(len(f.Data)) + 1); rerr == nil && string(cur) == string(f.Data) {
					unlock()
					_ = cf.Close()
					continue
				}
			}
			err = cf.writeAtomic(f.Data, cmpMode(f.Mode), owner, nil)
		}
		unlock()
		_ = cf.Close()
		if err != nil {
			return fmt.Errorf("restore %s: %w", f.Path, err)
		}
	}
	return nil
}

func cmpMode(m fs.FileMode) fs.FileMode {
	if m == 0 {
		return 0o644
	}
	return m
}
