package executors

import (
	"cmp"
	"slices"
	"strings"
)

// minMaskedLength is the length from which .env values are masked: shorter
// ones (ports, flags, small numbers) are everywhere in messages and are not
// secrets.
const minMaskedLength = 4

// maskValues returns the values to mask: every value of at least
// minMaskedLength bytes except the given names, longest first.
func maskValues(values map[string]string, except []string) []string {
	var out []string
	for _, v := range values {
		if len(v) >= minMaskedLength && !slices.Contains(except, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return out
}

// maskText replaces the given values in s with "***", and cuts what
// compose-go's dotenv parser quotes from a broken file.
func maskText(values []string, s string) string {
	if len(values) > 0 {
		pairs := make([]string, 0, 2*len(values))
		for _, v := range values {
			pairs = append(pairs, v, "***")
		}
		s = strings.NewReplacer(pairs...).Replace(s)
	}
	return maskDotenvQuotes(s)
}

// maskDotenvQuotes cuts the text that compose-go's dotenv errors quote from
// an env file ("unexpected character ... in variable name <line>",
// "unterminated quoted value <value>"): an env_file of a service can hold
// secrets the .env masking does not know.
func maskDotenvQuotes(s string) string {
	for _, marker := range []string{"unterminated quoted value ", " in variable name "} {
		if i := strings.Index(s, marker); i >= 0 {
			end := strings.IndexByte(s[i+len(marker):], '\n')
			if end < 0 {
				s = s[:i+len(marker)] + "[...]"
			} else {
				s = s[:i+len(marker)] + "[...]" + s[i+len(marker)+end:]
			}
		}
	}
	return s
}

// maskFuzzy masks values in a (short) message even when compose-go quotes them changed, such
// as a size parsed without its unit ("...s3cr3" of "...s3cr3t"): every long enough piece of a
// value is masked.
func maskFuzzy(values []string, s string) string {
	s = maskText(values, s)
	if len(s) > 64<<10 {
		return s
	}
	for _, v := range values {
		for {
			common := longestCommon(s, v)
			if len(common) < minMaskedLength || len(common) < min(len(v), 6) {
				break
			}
			s = strings.ReplaceAll(s, common, "***")
		}
	}
	return s
}

// longestCommon returns the longest common substring of a and b.
func longestCommon(a, b string) string {
	if len(a) == 0 || len(b) == 0 {
		return ""
	}
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	best, end := 0, 0
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			if a[i-1] == b[j-1] {
				cur[j] = prev[j-1] + 1
				if cur[j] > best {
					best, end = cur[j], i
				}
			} else {
				cur[j] = 0
			}
		}
		prev, cur = cur, prev
	}
	return a[end-best : end]
}

// maskerOf returns the masking of everything shown: every env file value except the names
// the result shows anyway.
func maskerOf(values map[string]string, except []string) func(string) string {
	masked := maskValues(values, except)
	return func(s string) string { return maskText(masked, s) }
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
