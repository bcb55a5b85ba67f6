package orchestratorsync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// identityFile is the name of the file in the state directory that keeps the agent's identity.
const identityFile = "identity.json"

// Identity is what the agent keeps across restarts: its id and, when the orchestrator issued
// one, its own token.
type Identity struct {
	AgentID string `json:"agent_id"`
	Token   string `json:"token,omitempty"`
}

// LoadIdentity reads the identity from dir. A missing file is an empty identity, not an error.
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
		// A damaged identity only costs a fresh registration.
		return Identity{}, fmt.Errorf("decode identity %s: %w", filepath.Join(dir, identityFile), err)
	}
	return id, nil
}

// SaveIdentity writes the identity to dir (created 0700) as a 0600 file, atomically.
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
	return nil
}
