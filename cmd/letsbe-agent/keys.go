package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/letsbe/sysadmin-agent/internal/tasksig"
)

const keysUsage = `usage:
  letsbe-agent keys keygen [--alg EdDSA|ES256] [--private task-key.jwk] [--public task-keys.json]
      make a signing key: the private JWK (mode 0600, never overwritten) for the orchestrator,
      the public JWKS for the agents' AGENT_TASK_KEYS
  letsbe-agent keys sign --key task-key.jwk --agent-id ID [--ttl 10m | --not-after TIME] TASK.json|-
      print the task (as GET /tasks/next hands it out) with agent_id, not_after and signature set`

// runKeys implements `letsbe-agent keys`.
func runKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, keysUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "keygen":
		err = keygen(args[1:], stdout, stderr)
	case "sign":
		err = signTask(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, keysUsage)
		return 0
	default:
		err = fmt.Errorf("unknown keys command %q (want keygen or sign)", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent keys: %v\n", err)
		return 1
	}
	return 0
}

func keygen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("letsbe-agent keys keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	alg := fs.String("alg", "EdDSA", "EdDSA (Ed25519) or ES256 (P-256)")
	private := fs.String("private", "task-key.jwk", "where to write the private JWK (mode 0600; an existing file is never overwritten)")
	public := fs.String("public", "task-keys.json", "where to write the public JWKS (AGENT_TASK_KEYS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	key, err := tasksig.GenerateKey(jose.SignatureAlgorithm(*alg))
	if err != nil {
		return err
	}
	signer, err := tasksig.NewSigner(key)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(key, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*private, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("private key: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("private key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("private key: %w", err)
	}
	if err := signer.WritePublicKeySet(*public); err != nil {
		return fmt.Errorf("public key set: %w", err)
	}
	fmt.Fprintf(stdout, "kid %s\nprivate key %s (keep it with the orchestrator)\npublic key set %s (AGENT_TASK_KEYS)\n", signer.KID(), *private, *public)
	return nil
}

func signTask(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("letsbe-agent keys sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "private JWK to sign with (required)")
	agentID := fs.String("agent-id", "", "the agent the task is for (required)")
	ttl := fs.Duration("ttl", 0, "set not_after to now + ttl, unless the task has one")
	notAfter := fs.String("not-after", "", "set not_after (RFC 3339), replacing the task's")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 1:
		return errors.New("want one task file (or - for standard input)")
	case *keyFile == "":
		return errors.New("missing --key")
	case *agentID == "":
		return errors.New("missing --agent-id")
	}
	kb, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("--key: %w", err)
	}
	signer, err := tasksig.ParseSigner(kb)
	if err != nil {
		return fmt.Errorf("--key %s: %w", *keyFile, err)
	}
	task, err := readTaskFile(os.Stdin, fs.Arg(0))
	if err != nil {
		return err
	}
	if *notAfter != "" {
		if _, err := time.Parse(time.RFC3339Nano, *notAfter); err != nil {
			return fmt.Errorf("invalid --not-after %q: want an RFC 3339 time", *notAfter)
		}
		if task, err = setMember(task, "not_after", *notAfter); err != nil {
			return err
		}
	}
	out, err := signer.SignTaskJSON(task, *agentID, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

func setMember(obj []byte, key, value string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(obj, &m); err != nil || m == nil {
		return nil, errors.New("task: not a JSON object")
	}
	m[key], _ = json.Marshal(value)
	return json.Marshal(m)
}
