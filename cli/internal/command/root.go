// Package command implements the sluice command tree (spf13/cobra).
package command

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// DefaultServer is the API URL of `sluice dev`.
const DefaultServer = "http://127.0.0.1:8080"

// Version is set at build time with -ldflags "-X github.com/sluice-ml/sluice/cli/internal/command.Version=...".
var Version = "dev"

// ExitError carries a process exit code (2 = invalid input, as for a rejected spec).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// usageError makes a command exit with code 2.
func usageError(err error) error { return &ExitError{Code: 2, Err: err} }

// Options are the global flags.
type Options struct {
	Server string
	// Token is the API token sent with every request (--token; else SLUICE_TOKEN, the `sluice login`
	// file, or the admin token of a `sluice dev` data dir: see [Options.token]).
	Token string
	Out   io.Writer
	Err   io.Writer
}

// NewRoot builds the command tree.
func NewRoot(out, errw io.Writer) *cobra.Command {
	opts := &Options{Out: out, Err: errw}
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Sluice: an event-driven ML platform (pipelines, training, serving, notebooks, lineage)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errw)
	server := os.Getenv("SLUICE_SERVER")
	if server == "" {
		server = DefaultServer
	}
	root.PersistentFlags().StringVar(&opts.Server, "server", server, "Sluice API URL (env SLUICE_SERVER)")
	root.PersistentFlags().StringVar(&opts.Token, "api-token", "", "API token (env SLUICE_TOKEN; default: the token stored by sluice login, else the sluice dev admin token)")
	root.AddCommand(newDevCmd(opts), newEventsCmd(opts), newVersionCmd(opts))
	for _, add := range extraCommands {
		root.AddCommand(add(opts))
	}
	return root
}

// extraCommands lets each service's client verbs register themselves from their own file.
var extraCommands []func(*Options) *cobra.Command

// Execute runs the command line and returns the exit code.
func Execute(args []string, out, errw io.Writer) int {
	root := NewRoot(out, errw)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(errw, "error:", err)
		var ee *ExitError
		if errors.As(err, &ee) {
			return ee.Code
		}
		return 1
	}
	return 0
}

func newVersionCmd(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the sluice version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(o.Out, "sluice %s\n", Version)
			return nil
		},
	}
}
