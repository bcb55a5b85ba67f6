package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/letsbe/sysadmin-agent/internal/agenthttp"
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
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	st, err := agenthttp.Fetch(ctx, addr, os.Getenv("AGENT_HTTP_TOKEN"), limit)
	switch {
	case errors.Is(err, agenthttp.ErrUnauthorized):
		fmt.Fprintf(stderr, "letsbe-agent status: the agent at %s requires AGENT_HTTP_TOKEN\n", addr)
		return 2
	case err != nil && st.Code == 0:
		fmt.Fprintf(stderr, "letsbe-agent status: cannot reach the agent at %s (AGENT_HTTP_ADDR): %v\n", addr, err)
		stateDir := "/var/lib/letsbe-agent"
		if v := os.Getenv("AGENT_STATE_DIR"); v != "" {
			stateDir = v
		}
		if ls, ok := agenthttp.ReadListenerState(stateDir); ok {
			fmt.Fprintf(stderr, "letsbe-agent status: the agent could not listen on %s since %s: %s (it keeps trying; is another program on that port?)\n",
				ls.Addr, ls.Since.Local().Format(time.DateTime), ls.Error)
		}
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "letsbe-agent status: %v\n", err)
		return 2
	}
	ready, tasks, readyCode := st.Readiness, st.Tasks, st.Code

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

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
