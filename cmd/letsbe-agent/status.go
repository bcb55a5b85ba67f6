package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

func newStatusCmd() *cobra.Command {
	def := "127.0.0.1:9464"
	if v, ok := os.LookupEnv("AGENT_HTTP_ADDR"); ok && v != "" {
		def = v
	}
	var addr string
	var limit int
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the readiness and the recent tasks of the agent running on this host",
		Long: `Show the readiness and the recent tasks of the agent running on this host, read from its local
listener (AGENT_HTTP_ADDR). Exit codes: 0 ready, 1 not ready, 2 the agent cannot be reached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if code := runStatus(addr, limit, cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "http-addr", def, "address of the agent's local listener (env AGENT_HTTP_ADDR)")
	cmd.Flags().IntVar(&limit, "limit", 20, "number of recent tasks to show")
	return cmd
}

// runStatus prints the readiness and the recent tasks of the agent listening on addr. It
// returns 0 when the agent is ready, 1 when it is not, 2 when it cannot be reached.
func runStatus(addr string, limit int, stdout, stderr io.Writer) int {
	base := "http://" + strings.Replace(addr, "0.0.0.0", "127.0.0.1", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var ready readiness
	readyCode, err := getJSON(ctx, base+"/readyz", &ready)
	if err != nil {
		fmt.Fprintf(stderr, "letsbe-agent status: cannot reach the agent at %s (AGENT_HTTP_ADDR): %v\n", addr, err)
		stateDir := "/var/lib/letsbe-agent"
		if v := os.Getenv("AGENT_STATE_DIR"); v != "" {
			stateDir = v
		}
		if st, ok := readListenerState(stateDir); ok {
			fmt.Fprintf(stderr, "letsbe-agent status: the agent could not listen on %s since %s: %s (it keeps trying; is another program on that port?)\n",
				st.Addr, st.Since.Local().Format(time.DateTime), st.Error)
		}
		return 2
	}
	if readyCode == http.StatusUnauthorized {
		fmt.Fprintf(stderr, "letsbe-agent status: the agent at %s requires AGENT_HTTP_TOKEN\n", addr)
		return 2
	}
	var tasks debugTasks
	if _, err := getJSON(ctx, fmt.Sprintf("%s/debug/tasks?limit=%d", base, limit), &tasks); err != nil {
		fmt.Fprintf(stderr, "letsbe-agent status: %v\n", err)
		return 2
	}

	state := "READY"
	switch {
	case readyCode != http.StatusOK:
		state = "NOT READY (" + ready.Reason + ")"
	case ready.Standby:
		state = "READY (" + ready.Reason + ")"
	}
	fmt.Fprintf(stdout, "Agent:      %s\n", orDash(ready.AgentID))
	fmt.Fprintf(stdout, "State:      %s\n", state)
	hb := "never"
	if ready.LastHeartbeat != nil {
		hb = fmt.Sprintf("%s ago (interval %s)", time.Since(*ready.LastHeartbeat).Round(time.Second), ready.HeartbeatInterval)
	}
	fmt.Fprintf(stdout, "Heartbeat:  %s\n", hb)
	fmt.Fprintf(stdout, "Tasks:      %d held, showing the %d most recent\n\n", tasks.Total, len(tasks.Tasks))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tPHASE\tSTARTED\tDURATION\tREPORTED\tERROR")
	for _, t := range tasks.Tasks {
		started, dur := "-", "-"
		if t.Started != nil {
			started = t.Started.Local().Format("2006-01-02 15:04:05")
			if t.Completed != nil {
				dur = t.Completed.Sub(*t.Started).Round(time.Millisecond).String()
			} else {
				dur = time.Since(*t.Started).Round(time.Second).String() + "+"
			}
		}
		reported := "no"
		if t.Reported {
			reported = "yes"
		}
		errText := t.Error
		if len(errText) > 60 {
			errText = errText[:57] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Type, t.Phase, started, dur, reported, orDash(errText))
	}
	_ = tw.Flush()
	if readyCode != http.StatusOK {
		return 1
	}
	return 0
}

func getJSON(ctx context.Context, url string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if tok := os.Getenv("AGENT_HTTP_TOKEN"); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return resp.StatusCode, nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(v); err != nil {
		return resp.StatusCode, fmt.Errorf("decode %s: %w", url, err)
	}
	return resp.StatusCode, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
