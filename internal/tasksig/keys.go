package tasksig

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-logr/logr"

	"github.com/letsbe/sysadmin-agent/internal/boundedread"
)

// maxKeyFileBytes bounds a JWKS file.
const maxKeyFileBytes = 1 << 20

// Algorithms are the JWS algorithms a task signature may use: EdDSA (Ed25519) and ES256
// (ECDSA P-256 with SHA-256). Anything else, "none" and HMAC among it, is refused.
var Algorithms = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}

// KeySet is an immutable set of trusted public keys, by kid.
type KeySet struct {
	keys map[string]jose.JSONWebKey
}

// KIDs returns the key ids, sorted.
func (k *KeySet) KIDs() []string {
	if k == nil {
		return nil
	}
	ids := make([]string, 0, len(k.keys))
	for id := range k.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Lookup returns the key with that kid.
func (k *KeySet) Lookup(kid string) (jose.JSONWebKey, bool) {
	if k == nil {
		return jose.JSONWebKey{}, false
	}
	key, ok := k.keys[kid]
	return key, ok
}

// ParseKeySet reads a JWKS document ({"keys": [...]}) of public signing keys. Every key
// needs a unique kid, an algorithm the agent accepts (alg EdDSA with an Ed25519 key, or ES256
// with a P-256 key; alg may be omitted and is then implied by the key) and no "use" other than
// "sig". A private key is refused: the agent only ever needs the public half. An empty set is
// an error.
func ParseKeySet(b []byte) (*KeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("no keys")
	}
	ks := &KeySet{keys: make(map[string]jose.JSONWebKey, len(set.Keys))}
	for i, key := range set.Keys {
		if key.KeyID == "" {
			return nil, fmt.Errorf("key %d: missing kid", i)
		}
		if _, dup := ks.keys[key.KeyID]; dup {
			return nil, fmt.Errorf("key %q: kid used twice", key.KeyID)
		}
		alg, err := keyAlgorithm(key)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key.KeyID, err)
		}
		if key.Use != "" && key.Use != "sig" {
			return nil, fmt.Errorf("key %q: use %q, want sig", key.KeyID, key.Use)
		}
		if !key.IsPublic() {
			return nil, fmt.Errorf("key %q: a private key; trusted keys must be public keys only", key.KeyID)
		}
		key.Algorithm = string(alg)
		ks.keys[key.KeyID] = key
	}
	return ks, nil
}

// keyAlgorithm returns the JWS algorithm the key is for, checking it matches its alg.
func keyAlgorithm(key jose.JSONWebKey) (jose.SignatureAlgorithm, error) {
	var alg jose.SignatureAlgorithm
	switch k := key.Key.(type) {
	case ed25519.PublicKey, ed25519.PrivateKey:
		alg = jose.EdDSA
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("an ECDSA key must be on P-256 (ES256)")
		}
		alg = jose.ES256
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("an ECDSA key must be on P-256 (ES256)")
		}
		alg = jose.ES256
	default:
		return "", fmt.Errorf("unsupported key type %T: want Ed25519 (EdDSA) or P-256 (ES256)", key.Key)
	}
	if key.Algorithm != "" && key.Algorithm != string(alg) {
		return "", fmt.Errorf("alg %q does not match the key (want %s)", key.Algorithm, alg)
	}
	return alg, nil
}

// LoadKeySet reads a JWKS file (ParseKeySet).
func LoadKeySet(path string) (*KeySet, error) {
	b, err := boundedread.File(path, maxKeyFileBytes)
	if err != nil {
		return nil, err
	}
	ks, err := ParseKeySet(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ks, nil
}

// Keys holds the trusted key set of a JWKS file and replaces it when the file changes
// (Watch) or when asked (Reload). A reload that fails keeps the keys it had, and says so.
type Keys struct {
	path string
	log  logr.Logger
	cur  atomic.Pointer[KeySet]
	mu   sync.Mutex // serialises reloads
	// onReload, when set, is called after every reload attempt (tests).
	onReload func(*KeySet, error)
}

// OpenKeys loads the JWKS file at path; it fails when the file cannot be used.
func OpenKeys(path string, log logr.Logger) (*Keys, error) {
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	k := &Keys{path: path, log: log}
	ks, err := LoadKeySet(path)
	if err != nil {
		return nil, err
	}
	k.cur.Store(ks)
	return k, nil
}

// StaticKeys returns Keys that always hold ks (tests, the development wiring).
func StaticKeys(ks *KeySet) *Keys {
	k := &Keys{log: logr.Discard()}
	k.cur.Store(ks)
	return k
}

// Path returns the JWKS file's path ("" for StaticKeys).
func (k *Keys) Path() string { return k.path }

// Current returns the key set in force.
func (k *Keys) Current() *KeySet { return k.cur.Load() }

// Reload reads the file again. On error the keys in force stay.
func (k *Keys) Reload() error {
	if k.path == "" {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	ks, err := LoadKeySet(k.path)
	if err == nil {
		old := k.cur.Swap(ks)
		if !slices.Equal(old.KIDs(), ks.KIDs()) {
			k.log.Info("Trusted task keys reloaded", "file", k.path, "kids", ks.KIDs())
		} else {
			k.log.V(1).Info("Trusted task keys reloaded", "file", k.path, "kids", ks.KIDs())
		}
	} else {
		k.log.Error(err, "Cannot reload the trusted task keys; keeping the keys in force", "file", k.path, "kids", k.Current().KIDs())
	}
	if k.onReload != nil {
		k.onReload(k.Current(), err)
	}
	return err
}

// Watch reloads the file whenever it, or the directory entry naming it, changes, until ctx
// ends. It watches the directory, so that a file replaced by a rename (as editors, configuration
// management and Kubernetes' secret volumes do) is followed. Changes are coalesced for a short
// while so that a file written in several steps is read once, whole.
func (k *Keys) Watch(ctx context.Context) error {
	if k.path == "" {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", k.path, err)
	}
	dir, name := filepath.Split(filepath.Clean(k.path))
	if err := w.Add(filepath.Clean(dir)); err != nil {
		_ = w.Close()
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	go func() {
		defer func() { _ = w.Close() }()
		const settle = 100 * time.Millisecond
		var timer *time.Timer
		var fire <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				// Kubernetes' secret volumes swap a ..data symlink: any change in the directory
				// may change what the name resolves to.
				if filepath.Base(ev.Name) != name && !isKubernetesDataLink(ev.Name) {
					continue
				}
				if timer == nil {
					timer = time.NewTimer(settle)
				} else {
					timer.Reset(settle)
				}
				fire = timer.C
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				k.log.Error(err, "Watching the trusted task keys failed", "file", k.path)
			case <-fire:
				fire = nil
				_ = k.Reload()
			}
		}
	}()
	return nil
}

func isKubernetesDataLink(name string) bool { return filepath.Base(name) == "..data" }
