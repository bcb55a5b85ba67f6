package executors

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"strconv"
	"strings"
)

// FileWrite is the FILE_WRITE executor: it writes a whole file, atomically,
// inside the file roots. It implements [Executor].
type FileWrite struct{ fileTask }

// NewFileWrite returns a FILE_WRITE executor. It fails if a root is not an
// absolute path.
func NewFileWrite(cfg FileConfig) (*FileWrite, error) {
	t, err := newFileTask(cfg)
	if err != nil {
		return nil, err
	}
	return &FileWrite{t}, nil
}

// fileWritePayload is the FILE_WRITE task payload.
type fileWritePayload struct {
	Path     string  `json:"path"`
	Content  *string `json:"content"`
	Encoding string  `json:"encoding"`
	Mode     string  `json:"mode"`
}

// FileWriteResult is the result of a FILE_WRITE task.
type FileWriteResult struct {
	// Path is the cleaned absolute path written.
	Path string `json:"path"`
	// BytesWritten is the size written, 0 when the file was already as asked.
	BytesWritten int `json:"bytes_written"`
	// SHA256 is the hex digest of the content.
	SHA256 string `json:"sha256"`
	// Changed is false when the file already had this content and mode.
	Changed bool `json:"changed"`
}

// parseMode parses an octal permission such as "0644", "644" or "0o600".
// Only permission bits are allowed: no set-user-ID, set-group-ID or sticky.
func parseMode(s string) (fs.FileMode, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	n, err := strconv.ParseUint(digits, 8, 32)
	if err != nil || digits == "" || len(digits) > 4 || n > 0o777 {
		return 0, InvalidPayloadf("mode %q: want an octal permission from 0000 to 0777, such as \"0644\"", s)
	}
	return fs.FileMode(n), nil
}

// decodeContent returns the bytes a FILE_WRITE payload asks for.
func (w *FileWrite) decodeContent(p fileWritePayload) ([]byte, error) {
	if p.Content == nil {
		return nil, InvalidPayloadf("field \"content\" is required")
	}
	switch strings.ToLower(p.Encoding) {
	case "", "utf-8", "utf8":
		if int64(len(*p.Content)) > w.maxBytes {
			return nil, InvalidPayloadf("content is %d bytes, larger than the limit of %d bytes (AGENT_MAX_FILE_BYTES)", len(*p.Content), w.maxBytes)
		}
		return []byte(*p.Content), nil
	case "base64":
		if int64(base64.StdEncoding.DecodedLen(len(*p.Content))) > w.maxBytes+3 {
			return nil, InvalidPayloadf("content is larger than the limit of %d bytes (AGENT_MAX_FILE_BYTES)", w.maxBytes)
		}
		data, err := base64.StdEncoding.DecodeString(*p.Content)
		if err != nil {
			return nil, InvalidPayloadf("content is not valid base64: %w", err)
		}
		if int64(len(data)) > w.maxBytes {
			return nil, InvalidPayloadf("content is %d bytes, larger than the limit of %d bytes (AGENT_MAX_FILE_BYTES)", len(data), w.maxBytes)
		}
		return data, nil
	default:
		return nil, InvalidPayloadf("encoding %q: want \"utf-8\" or \"base64\"", p.Encoding)
	}
}

// Execute implements [Executor] for a payload
// {"path": "/opt/letsbe/app/x.conf", "content": "...", "encoding"?: "utf-8"|"base64", "mode"?: "0644"}.
// The result is a [*FileWriteResult].
//
// Missing parent directories are created (0755). The mode is the given one,
// else the existing file's, else 0644; an existing file's owner is kept.
// Identical content and mode are not rewritten.
func (w *FileWrite) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	var p fileWritePayload
	if err := DecodePayload(payload, &p); err != nil {
		return nil, err
	}
	// Validate the whole payload before touching anything.
	if _, _, _, err := w.roots.locate("path", p.Path); err != nil {
		return nil, err
	}
	data, err := w.decodeContent(p)
	if err != nil {
		return nil, err
	}
	var mode fs.FileMode
	if p.Mode != "" {
		if mode, err = parseMode(p.Mode); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}

	f, err := w.roots.openFile("path", p.Path, true)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	unlock := pathLocks.lock(f.lockKey())
	defer unlock()

	sum := sha256.Sum256(data)
	res := &FileWriteResult{Path: f.path, SHA256: hex.EncodeToString(sum[:])}
	existing, err := f.stat()
	if err != nil {
		return nil, err
	}
	switch {
	case p.Mode != "":
	case existing != nil:
		mode = permOf(existing)
	default:
		mode = 0o644
	}
	if existing != nil && permOf(existing) == mode && existing.Size() == int64(len(data)) {
		old, err := f.read(w.maxBytes)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(old, data) {
			return res, nil
		}
	}
	if err := f.writeAtomic(data, mode, ownerOf(existing), w.hook); err != nil {
		return nil, err
	}
	res.BytesWritten, res.Changed = len(data), true
	return res, nil
}
