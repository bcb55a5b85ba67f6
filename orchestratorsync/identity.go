package orchestratorsync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// identityFile is the name of the file in the state directory that keeps the agent's identity.
const identityFile = "identity.json"

// Identity is what the agent keeps across restarts: its id and, when the orchestrator issued
// one, its own token.
type Identity struct {
	AgentID string `json:"agent_id"`
	Token   string `json:"token,omitempty"`
}

// DamagedIdentityError is returned by LoadIdentity for an identity file that cannot be
// decoded. The agent moves such a file aside (MoveIdentityAside) and registers again.
type DamagedIdentityError struct {
	Path string
	Err  error
}

func (e *DamagedIdentityError) Error() string {
	return fmt.Sprintf("decode identity %s: %v", e.Path, e.Err)
}

func (e *DamagedIdentityError) Unwrap() error { return e.Err }

// LoadIdentity reads the identity from dir. A missing file is an empty identity, not an error;
// a file that does not decode (or holds no agent id) is a *DamagedIdentityError.
func LoadIdentity(dir string) (Identity, error) {
	var id Identity
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return id, fmt.Errorf("read identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return Identity{}, &DamagedIdentityError{Path: filepath.Join(dir, identityFile), Err: err}
	}
	if id.AgentID == "" {
		return Identity{}, &DamagedIdentityError{Path: filepath.Join(dir, identityFile), Err: errors.New("no agent_id")}
	}
	return id, nil
}

// MoveIdentityAside renames a damaged identity file to identity.json.damaged-<time> in the
// same directory, keeping it for inspection, and returns the new path.
func MoveIdentityAside(dir string, now time.Time) (string, error) {
	aside := filepath.Join(dir, identityFile+".damaged-"+now.UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(filepath.Join(dir, identityFile), aside); err != nil {
		return "", fmt.Errorf("move damaged identity aside: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("move damaged identity aside: %w", err)
	}
	return aside, nil
}

// SaveIdentity writes the identity to dir (created 0700) as a 0600 file, atomically and
// durably: a temporary file, fsynced, renamed over the old one, then the directory fsynced.
// When it returns nil the identity survives a crash; when it fails the old file is intact.
func SaveIdentity(dir string, id Identity) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("restrict state dir: %w", err)
	}
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, identityFile)); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
