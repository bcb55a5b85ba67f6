package executors

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// projectEnvMasks returns the values a SHELL command run in dir must not show: when dir lies
// inside a file root and holds a .env (a Compose project directory), the values of that file
// (as DOCKER_RELOAD masks them). The file is read through an os.Root on its root, like every
// task file. A .env that cannot be read or parsed is an error: the command could print what
// would not be masked.
func projectEnvMasks(roots *fileRoots, maxBytes int64, dir string) ([]string, error) {
	if roots == nil || dir == "" {
		return nil, nil
	}
	clean, root, rel, err := roots.locate("cwd", dir)
	if err != nil {
		return nil, nil // not in a root: nothing the agent knows to mask
	}
	rt, err := openRoot(root)
	if err != nil {
		return nil, nil
	}
	defer rt.Close()
	envPath := filepath.Join(clean, ".env")
	fi, err := rt.Stat(filepath.Join(rel, ".env"))
	switch {
	case errors.Is(err, fs.ErrNotExist) || isEscape(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("env file %s (its values are masked in the output): %w", envPath, unwrapPathError(err))
	case !fi.Mode().IsRegular():
		return nil, nil
	}
	f := &confinedFile{field: "the .env of cwd", path: envPath, root: root, name: ".env"}
	if f.dir, err = rt.OpenRoot(rel); err != nil {
		return nil, f.wrap("open the directory of", err)
	}
	defer f.Close()
	data, err := f.read(maxBytes)
	if err != nil {
		return nil, err
	}
	if _, err := scanEnv(data); err != nil {
		return nil, fmt.Errorf("env file %s (its values are masked in the output): %w", envPath, err)
	}
	values, err := dotenv.ParseWithLookup(bytes.NewReader(data), func(string) (string, bool) { return "", false })
	if err != nil {
		return nil, fmt.Errorf("env file %s (its values are masked in the output): %s", envPath, maskText(nil, err.Error()))
	}
	return maskValues(values, nil), nil
}

// maskOutput replaces the values in a process result's output with "***".
func maskOutput(res *ProcessResult, values []string) {
	if res == nil || len(values) == 0 {
		return
	}
	pairs := make([]string, 0, 2*len(values))
	for _, v := range values {
		pairs = append(pairs, v, "***")
	}
	r := strings.NewReplacer(pairs...)
	res.Stdout, res.Stderr = r.Replace(res.Stdout), r.Replace(res.Stderr)
}
