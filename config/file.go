package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/letsbe/sysadmin-agent/internal/boundedread"
)

// maxConfigFileBytes bounds the config file.
const maxConfigFileBytes = 1 << 20

// readFile reads a YAML config file whose keys are the flag names (orchestrator-url,
// max-concurrent-tasks, ...). Lists may be YAML sequences, labels a YAML mapping. Unknown keys
// are an error, so a typo never goes unnoticed.
func readFile(path string) (map[string]string, error) {
	b, err := boundedread.File(path, maxConfigFileBytes)
	if err != nil {
		return nil, fmt.Errorf("read config file (--config): %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config file %s (--config): %w", path, err)
	}
	out := make(map[string]string, len(raw))
	for key, val := range raw {
		if !slices.ContainsFunc(settings, func(s setting) bool { return s.flag == key }) {
			return nil, fmt.Errorf("config file %s (--config): unknown key %q (keys are the flag names, e.g. orchestrator-url)", path, key)
		}
		str, err := scalarString(val)
		if err != nil {
			return nil, fmt.Errorf("config file %s (--config): key %q: %w", path, key, err)
		}
		out[key] = str
	}
	return out, nil
}

// scalarString turns a YAML value into the flag's string form: a scalar, a list of scalars
// (joined with commas) or a mapping of scalars (k=v pairs).
func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, err := scalar(e)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, 0, len(x))
		for _, k := range keys {
			s, err := scalar(x[k])
			if err != nil {
				return "", err
			}
			parts = append(parts, k+"="+s)
		}
		return strings.Join(parts, ","), nil
	}
	return scalar(v)
}

func scalar(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("want a scalar, a list or a mapping, not nested collections")
}
