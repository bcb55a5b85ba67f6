package logging

import (
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
)

// TestRouteLogrus: compose-go's logrus warnings reach the logr logger, at the levels the
// logger enables. Not parallel: logrus's standard logger is global.
func TestRouteLogrus(t *testing.T) {
	var lines []string
	log := funcr.New(func(_, args string) { lines = append(lines, args) }, funcr.Options{Verbosity: 1})
	RouteLogrus(log)
	t.Cleanup(func() { RouteLogrus(logr.Discard()) })

	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	_, err := loader.LoadWithContext(t.Context(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: []byte("version: \"3\"\nservices:\n  web:\n    image: nginx\n")}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("app", true) })
	if err != nil {
		t.Fatal(err)
	}
	logrus.WithField("k", "v").Debug("a debug line")
	logrus.Trace("a trace line")
	logrus.Error("an error line")
	want := []string{
		`"level"=0 "msg"="` + file + `: the attribute ` + "`version`" + ` is obsolete, it will be ignored, please remove it to avoid potential confusion" "logrusLevel"="warning"`,
		`"level"=1 "msg"="a debug line" "k"="v"`,
		`"msg"="an error line" "error"=null`,
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("logged (-want +got):\n%s", diff)
	}
}
