package tasksig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Signer signs tasks with one private key.
type Signer struct {
	key jose.JSONWebKey
	alg jose.SignatureAlgorithm
}

// GenerateKey returns a new private signing key for alg (EdDSA or ES256) whose kid is its
// RFC 7638 thumbprint.
func GenerateKey(alg jose.SignatureAlgorithm) (jose.JSONWebKey, error) {
	var priv any
	switch alg {
	case jose.EdDSA:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return jose.JSONWebKey{}, err
		}
		priv = k
	case jose.ES256:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return jose.JSONWebKey{}, err
		}
		priv = k
	default:
		return jose.JSONWebKey{}, fmt.Errorf("unsupported algorithm %q: want EdDSA or ES256", alg)
	}
	key := jose.JSONWebKey{Key: priv, Algorithm: string(alg), Use: "sig"}
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	key.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	return key, nil
}

// NewSigner returns a signer for a private JWK with a kid.
func NewSigner(key jose.JSONWebKey) (*Signer, error) {
	if key.IsPublic() {
		return nil, errors.New("signing key: a public key; need the private key")
	}
	if key.KeyID == "" {
		return nil, errors.New("signing key: missing kid")
	}
	alg, err := keyAlgorithm(key)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", key.KeyID, err)
	}
	return &Signer{key: key, alg: alg}, nil
}

// ParseSigner reads a private JWK (as keygen writes it).
func ParseSigner(b []byte) (*Signer, error) {
	var key jose.JSONWebKey
	if err := key.UnmarshalJSON(b); err != nil {
		return nil, fmt.Errorf("not a JWK: %w", err)
	}
	return NewSigner(key)
}

// KID returns the signing key's id.
func (s *Signer) KID() string { return s.key.KeyID }

// PublicKeySet returns the JWKS document of the signer's public key.
func (s *Signer) PublicKeySet() jose.JSONWebKeySet {
	pub := s.key.Public()
	pub.Algorithm, pub.Use = string(s.alg), "sig"
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}}
}

// Sign returns the detached compact JWS over the canonical form of f.
func (s *Signer) Sign(f Fields) (string, error) {
	input, err := Canonical(f)
	if err != nil {
		return "", err
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, nil)
	if err != nil {
		return "", fmt.Errorf("signer: %w", err)
	}
	obj, err := sig.Sign(input)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return obj.DetachedCompactSerialize()
}

// SignTaskJSON signs a task as GET /tasks/next hands it out (a JSON object with id, type,
// payload, timeout_seconds, not_after) for agentID, and returns the object with "agent_id"
// and "signature" set and every other member kept. With ttl > 0 and no not_after in the task,
// not_after is set to now + ttl first.
func (s *Signer) SignTaskJSON(body []byte, agentID string, ttl time.Duration, now time.Time) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		return nil, errors.New("task: not a JSON object")
	}
	var f Fields
	if err := json.Unmarshal(obj["id"], &f.ID); err != nil || f.ID == "" {
		return nil, errors.New("task: id must be a non-empty string")
	}
	if err := json.Unmarshal(obj["type"], &f.Type); err != nil || f.Type == "" {
		return nil, errors.New("task: type must be a non-empty string")
	}
	if raw, ok := obj["not_after"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &f.NotAfter); err != nil {
			return nil, errors.New("task: not_after must be a string")
		}
	} else if ttl > 0 {
		f.NotAfter = now.Add(ttl).UTC().Format(time.RFC3339)
		obj["not_after"], _ = json.Marshal(f.NotAfter)
	}
	f.Payload, f.TimeoutSeconds, f.AgentID = obj["payload"], obj["timeout_seconds"], agentID
	if string(f.TimeoutSeconds) == "null" {
		f.TimeoutSeconds = nil
	}
	sig, err := s.Sign(f)
	if err != nil {
		return nil, err
	}
	obj["agent_id"], _ = json.Marshal(agentID)
	obj["signature"], _ = json.Marshal(sig)
	return json.Marshal(obj)
}
