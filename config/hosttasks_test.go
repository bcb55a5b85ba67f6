package config_test

import (
	"io"
	"strings"
	"testing"

	"github.com/letsbe/sysadmin-agent/config"
)

// TestHostTaskSettings covers AGENT_MAX_FILE_BYTES and AGENT_DOCKER_BINARY.
func TestHostTaskSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env        map[string]string
		args       []string
		wantBytes  int64
		wantDocker string
		wantErr    string
	}{
		{wantBytes: 16 << 20, wantDocker: "docker"},
		{env: map[string]string{"AGENT_MAX_FILE_BYTES": "512Ki"}, wantBytes: 512 << 10, wantDocker: "docker"},
		{env: map[string]string{"AGENT_MAX_FILE_BYTES": "1048576"}, wantBytes: 1 << 20, wantDocker: "docker"},
		{args: []string{"--max-file-bytes", "1Gi"}, wantBytes: 1 << 30, wantDocker: "docker"},
		{env: map[string]string{"AGENT_DOCKER_BINARY": "/usr/local/bin/docker"}, wantBytes: 16 << 20, wantDocker: "/usr/local/bin/docker"},
		{args: []string{"--docker-binary", "podman"}, wantBytes: 16 << 20, wantDocker: "podman"},
		{env: map[string]string{"AGENT_MAX_FILE_BYTES": "0"}, wantErr: "invalid AGENT_MAX_FILE_BYTES"},
		{env: map[string]string{"AGENT_MAX_FILE_BYTES": "-1"}, wantErr: "invalid AGENT_MAX_FILE_BYTES"},
		{env: map[string]string{"AGENT_MAX_FILE_BYTES": "2Gi"}, wantErr: "invalid AGENT_MAX_FILE_BYTES"},
		{env: map[string]string{"AGENT_MAX_FILE_BYTES": "1.5"}, wantErr: "invalid AGENT_MAX_FILE_BYTES"},
		{env: map[string]string{"AGENT_MAX_FILE_BYTES": "lots"}, wantErr: "invalid AGENT_MAX_FILE_BYTES"},
		{args: []string{"--docker-binary", "bin/docker"}, wantErr: "invalid AGENT_DOCKER_BINARY"},
		{env: map[string]string{"AGENT_DOCKER_BINARY": "docker --host x"}, wantErr: "invalid AGENT_DOCKER_BINARY"},
	}
	for _, tt := range tests {
		e := map[string]string{"ORCHESTRATOR_URL": "http://x", "AGENT_TOKEN": "t"}
		for k, v := range tt.env {
			e[k] = v
		}
		cfg, err := config.Load(tt.args, env(e), config.ModeRun, io.Discard)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v %v: error %v, want %q", tt.env, tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %v: %v", tt.env, tt.args, err)
			continue
		}
		if cfg.MaxFileBytes != tt.wantBytes || cfg.DockerBinary != tt.wantDocker {
			t.Errorf("%v %v: MaxFileBytes %d, DockerBinary %q; want %d, %q", tt.env, tt.args, cfg.MaxFileBytes, cfg.DockerBinary, tt.wantBytes, tt.wantDocker)
		}
	}
}
