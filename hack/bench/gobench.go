package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// goBench is one Go benchmark summarised over its runs (-count).
type goBench struct {
	Pkg, Name string
	Runs      int
	// Medians per operation; NaN-free: a metric the benchmark did not report is absent.
	Metrics map[string]float64 // unit ("ns/op", "B/op", "allocs/op", ...) -> median
}

var cpuSuffix = regexp.MustCompile(`-\d+$`)

// parseGoBench reads `go test -bench` output (the standard benchmark format, as benchstat
// reads it) and returns the benchmarks in order of first appearance with the median of each
// metric.
func parseGoBench(r io.Reader) ([]goBench, error) {
	type acc struct {
		pkg, name string
		runs      int
		values    map[string][]float64
	}
	var order []string
	byKey := map[string]*acc{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a name line without results, or a log line
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := cpuSuffix.ReplaceAllString(f[0], "")
		key := pkg + "\x00" + name
		a := byKey[key]
		if a == nil {
			a = &acc{pkg: pkg, name: name, values: map[string][]float64{}}
			byKey[key] = a
			order = append(order, key)
		}
		a.runs++
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			a.values[f[i+1]] = append(a.values[f[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]goBench, 0, len(order))
	for _, key := range order {
		a := byKey[key]
		b := goBench{Pkg: a.pkg, Name: a.name, Runs: a.runs, Metrics: map[string]float64{}}
		for unit, vs := range a.values {
			b.Metrics[unit] = median(vs)
		}
		out = append(out, b)
	}
	return out, nil
}
