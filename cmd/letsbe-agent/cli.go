package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/letsbe/sysadmin-agent/config"
)

// Exit codes of every subcommand.
const (
	exitOK    = 0
	exitFail  = 1 // the agent, a check or a task failed
	exitSetup = 2 // a usage or setup error: bad flag, bad setting, nothing to talk to
)

// exitError ends a command with code; err, when set, is printed as one line first.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// failed ends a command with exit code 1 without printing anything more (the command has
// already said why, in its output or its log).
func failed() error { return &exitError{code: exitFail} }

// execute runs the command line args (without the program name) and returns the exit code:
// 0 done, 1 the work failed, 2 a usage or setup error.
func execute(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	if cmd, _, err := root.Find(args); err == nil {
		args = config.NormalizeArgs(cmd.Flags(), args)
	}
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	if ee, ok := errors.AsType[*exitError](err); ok {
		if ee.err != nil {
			fmt.Fprintf(stderr, "letsbe-agent: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "letsbe-agent: %v\n", err)
	return exitSetup
}

// newRootCmd is the whole command tree. Without a subcommand the agent runs (as `run`).
func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "letsbe-agent",
		Short: "The LetsBe SysAdmin Agent: takes work from the LetsBe Orchestrator and carries it out on this host",
		Long: `The LetsBe SysAdmin Agent takes work from the LetsBe Orchestrator and carries it out on this host.

Without a subcommand it runs the agent (see "letsbe-agent run --help"). Every setting is a flag
and an environment variable (named in each flag's help) and may come from a YAML file
(--config); flags win over the environment, which wins over the file, which wins over the
defaults.

Exit codes: 0 done, 1 the agent (or a check, or a task) failed, 2 a usage or setup error.`,
		Version:       versionString(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (see %s --help)", err, c.CommandPath())
	})
	run := newRunCmd()
	root.Flags().AddFlagSet(run.Flags())
	root.RunE = run.RunE
	root.AddCommand(
		run,
		newDevCmd(),
		newStatusCmd(),
		newKeysCmd(),
		newPolicyCmd(),
		newVersionCmd(),
		newDoctorCmd(),
		newRunTaskCmd(),
	)
	return root
}

// agentFlags binds the agent's settings to a command; load resolves them once it is parsed.
type agentFlags struct {
	flags *config.Flags
}

func bindAgentFlags(cmd *cobra.Command) *agentFlags {
	return &agentFlags{flags: config.Bind(cmd.Flags())}
}

// load returns the configuration; a bad setting is a setup error (exit 2).
func (f *agentFlags) load(mode config.Mode) (*config.Config, error) {
	cfg, err := f.flags.Load(config.LookupEnv, mode)
	if err != nil {
		return nil, &exitError{code: exitSetup, err: err}
	}
	return cfg, nil
}

func newRunCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent (the default when no subcommand is given)",
		Args:  cobra.NoArgs,
	}
	f := bindAgentFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := f.load(config.ModeRun)
		if err != nil {
			return err
		}
		return serve(cmd, cfg, func(ctx context.Context, log logr.Logger) error { return runAgent(ctx, cfg, log) })
	}
	return cmd
}

func newDevCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the embedded development orchestrator and an agent against it",
		Long: `Run the embedded development orchestrator (with a dashboard at its root URL) and an agent
against it in one process. Unless set, the state directory and the file roots are fresh
temporary directories. Enqueue tasks with curl, as the startup log shows.`,
		Args: cobra.NoArgs,
	}
	f := bindAgentFlags(cmd)
	opts := devOptions{}
	cmd.Flags().StringVar(&opts.listen, "listen", "127.0.0.1:8080", "address of the development orchestrator and its dashboard (a non-loopback one needs --allow-remote)")
	cmd.Flags().BoolVar(&opts.sign, "sign", true, "sign every task with a key made at start, which the agent trusts (false: hand tasks out unsigned, to see them refused)")
	cmd.Flags().BoolVar(&opts.allowRemote, "allow-remote", false, "allow a non-loopback --listen: anyone who reaches it runs tasks on this machine")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := f.load(config.ModeDev)
		if err != nil {
			return err
		}
		opts.stateDirSet = f.flags.Changed("state-dir") || envSet("AGENT_STATE_DIR")
		opts.fileRootsSet = f.flags.Changed("file-roots") || envSet("AGENT_FILE_ROOTS")
		opts.taskKeysSet = f.flags.Changed("task-keys") || envSet("AGENT_TASK_KEYS")
		return serve(cmd, cfg, func(ctx context.Context, log logr.Logger) error { return runDev(ctx, cfg, opts, log) })
	}
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and platform",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
		},
	}
}

func envSet(name string) bool {
	_, ok := os.LookupEnv(name)
	return ok
}

// passThrough is a command that parses its own arguments: run gets them and returns an exit
// code.
func passThrough(use, short string, run func(args []string, stdout, stderr io.Writer) int) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := run(args, cmd.OutOrStdout(), cmd.ErrOrStderr()); code != exitOK {
				return &exitError{code: code}
			}
			return nil
		},
	}
}

func newKeysCmd() *cobra.Command {
	return passThrough("keys keygen|sign ...", "Make a task signing key, or sign a task (letsbe-agent keys help)", runKeys)
}

func newPolicyCmd() *cobra.Command {
	return passThrough("policy show|check ...", "Show the effective task policy, or check a task against it (letsbe-agent policy help)", runPolicy)
}
