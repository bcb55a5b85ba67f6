package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// processKeyFile holds the key that seals the process groups recorded in Tasks' status
// (controllers.Options.ProcessKey), in the state directory.
const processKeyFile = "process.key"

const processKeyBytes = 32

// loadProcessKey reads the agent's process key from the state directory, making a new one the
// first time (or when the file is not a key: process groups recorded under the old one are
// then left alone, never wrongly killed).
func loadProcessKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, processKeyFile)
	key, err := os.ReadFile(path)
	if err == nil && len(key) == processKeyBytes {
		return key, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("process key %s: %w", path, err)
	}
	key = make([]byte, processKeyBytes)
	_, _ = rand.Read(key) // never fails (crypto/rand)
	tmp, err := os.CreateTemp(dir, processKeyFile+".*")
	if err != nil {
		return nil, fmt.Errorf("process key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("process key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("process key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("process key: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("process key: %w", err)
	}
	return key, nil
}
