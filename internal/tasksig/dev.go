package tasksig

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DevSigner is the signer of a development orchestrator: a fresh Ed25519 key per process.
type DevSigner struct {
	*Signer
	// TTL is how long a task stays valid after it is handed out (its not_after); 0 sets none.
	TTL time.Duration
}

// NewDevSigner generates a key and returns its signer.
func NewDevSigner(ttl time.Duration) (*DevSigner, error) {
	key, err := GenerateKey(jose.EdDSA)
	if err != nil {
		return nil, err
	}
	s, err := NewSigner(key)
	if err != nil {
		return nil, err
	}
	return &DevSigner{Signer: s, TTL: ttl}, nil
}

// SignHandout is an orchestratortest Options.Sign: it signs a task for the agent it is handed
// to, with not_after TTL from now.
func (d *DevSigner) SignHandout(task []byte, agentID string) ([]byte, error) {
	return d.SignTaskJSON(task, agentID, d.TTL, time.Now())
}

// WritePublicKeySet writes the JWKS of the public key to path (0644, atomically).
func (s *Signer) WritePublicKeySet(path string) error {
	b, err := json.MarshalIndent(s.PublicKeySet(), "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}

// writeFileAtomic writes b to a temporary file beside path and renames it over path.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
