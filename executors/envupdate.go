package executors

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"slices"
)

// EnvUpdate is the ENV_UPDATE executor: it edits a .env file inside the
// file roots, atomically. It implements [Executor].
type EnvUpdate struct{ fileTask }

// NewEnvUpdate returns an ENV_UPDATE executor. It fails if a root is not an
// absolute path.
func NewEnvUpdate(cfg FileConfig) (*EnvUpdate, error) {
	t, err := newFileTask(cfg)
	if err != nil {
		return nil, err
	}
	return &EnvUpdate{t}, nil
}

// envUpdatePayload is the ENV_UPDATE task payload.
type envUpdatePayload struct {
	Path    string             `json:"path"`
	Updates map[string]*string `json:"updates"`
	Remove  []string           `json:"remove"`
}

// EnvUpdateResult is the result of an ENV_UPDATE task: keys only, never
// values.
type EnvUpdateResult struct {
	// Path is the cleaned absolute path of the file.
	Path string `json:"path"`
	// UpdatedKeys are the keys whose entries were changed or added.
	UpdatedKeys []string `json:"updated_keys"`
	// RemovedKeys are the keys whose entries were removed.
	RemovedKeys []string `json:"removed_keys"`
	// Changed is false when the file already read as asked.
	Changed bool `json:"changed"`
}

// envNewFileMode is the mode of a .env file ENV_UPDATE creates.
const envNewFileMode = 0o600

// Execute implements [Executor] for a payload
// {"path": "/opt/letsbe/app/.env", "updates": {"KEY": "VALUE"}, "remove"?: ["KEY"]}.
// The result is an [*EnvUpdateResult].
//
// The file is created (0600) if missing, but not its directory; an existing
// file's mode and owner are kept.
func (e *EnvUpdate) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	var p envUpdatePayload
	if err := DecodePayload(payload, &p); err != nil {
		return nil, err
	}
	set := make(map[string]string, len(p.Updates))
	for _, k := range slices.Sorted(maps.Keys(p.Updates)) {
		if p.Updates[k] == nil {
			return nil, InvalidPayloadf("updates: the value of %q must be a string, got null", k)
		}
		set[k] = *p.Updates[k]
	}
	if len(set) == 0 && len(p.Remove) == 0 {
		return nil, InvalidPayloadf("nothing to do: \"updates\" and \"remove\" are both empty")
	}
	if err := validateEnvEdit(set, p.Remove); err != nil {
		return nil, err
	}
	if _, _, _, err := e.roots.locate("path", p.Path); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}

	f, err := e.roots.openFile("path", p.Path, false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	unlock := pathLocks.lock(f.lockKey())
	defer unlock()

	existing, err := f.stat()
	if err != nil {
		return nil, err
	}
	var src []byte
	perm := fs.FileMode(envNewFileMode)
	if existing != nil {
		if src, err = f.read(e.maxBytes); err != nil {
			return nil, err
		}
		perm = permOf(existing)
	}
	edit, err := editEnv(src, set, p.Remove)
	if err != nil {
		if IsPermanent(err) {
			return nil, err
		}
		return nil, fmt.Errorf("env file %s: %w", f.path, err)
	}
	res := &EnvUpdateResult{Path: f.path, UpdatedKeys: edit.updated, RemovedKeys: edit.removed}
	if bytes.Equal(edit.content, src) && (existing != nil || len(set) == 0) {
		return res, nil
	}
	if int64(len(edit.content)) > e.maxBytes {
		return nil, fmt.Errorf("env file %s would be %d bytes, larger than the limit of %d bytes (AGENT_MAX_FILE_BYTES)", f.path, len(edit.content), e.maxBytes)
	}
	if err := f.writeAtomic(edit.content, perm, ownerOf(existing), e.hook); err != nil {
		return nil, err
	}
	res.Changed = true
	return res, nil
}
