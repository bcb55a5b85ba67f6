package agenthttp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Status is what the local listener says about the agent.
type Status struct {
	// Code is the HTTP status of /readyz: 200 ready, 503 not ready.
	Code      int
	Readiness Readiness
	Tasks     DebugTasks
}

// ErrUnauthorized is returned by Fetch when the listener wants AGENT_HTTP_TOKEN.
var ErrUnauthorized = fmt.Errorf("the agent's local listener requires AGENT_HTTP_TOKEN")

// Fetch reads the readiness and the newest limit tasks from the agent listening on addr
// (host:port; 0.0.0.0 means this host), sending token when it is set.
func Fetch(ctx context.Context, addr, token string, limit int) (Status, error) {
	base := "http://" + strings.Replace(addr, "0.0.0.0", "127.0.0.1", 1)
	var st Status
	code, err := getJSON(ctx, base+"/readyz", token, &st.Readiness)
	if err != nil {
		return st, err
	}
	st.Code = code
	if _, err := getJSON(ctx, fmt.Sprintf("%s/debug/tasks?limit=%d", base, limit), token, &st.Tasks); err != nil {
		return st, err
	}
	return st, nil
}

func getJSON(ctx context.Context, url, token string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return resp.StatusCode, ErrUnauthorized
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("decode %s: %w", url, err)
	}
	return resp.StatusCode, nil
}
