// Package config holds the agent's settings: one Config struct, its defaults, and the single
// place where command-line flags, environment variables (and, later, a config file) are bound
// to it, with precedence flags > environment > defaults. Validation errors name the setting
// and the bad value, except for secrets.
//
// It only reads its inputs; it never starts anything. Deployment manifests (systemd, CRDs,
// Kubernetes) live in its subfolders.
package config
