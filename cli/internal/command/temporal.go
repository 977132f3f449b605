package command

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/libs/devstack"
	"github.com/sluice-ml/sluice/libs/workflow"
)

func init() {
	extraCommands = append(extraCommands, newTemporalCmd)
}

// temporalUIURL is the Temporal Web UI base URL links point at: SLUICE_TEMPORAL_UI_URL, else the
// `sluice dev` default http://127.0.0.1:8233. temporalNamespace is TEMPORAL_NAMESPACE, else "sluice".
func temporalUIURL() string {
	if v := os.Getenv("SLUICE_TEMPORAL_UI_URL"); v != "" {
		return v
	}
	return fmt.Sprintf("http://127.0.0.1:%d", devstack.DefaultTemporalUIPort)
}

func temporalNamespace() string {
	if v := os.Getenv("TEMPORAL_NAMESPACE"); v != "" {
		return v
	}
	return devstack.Namespace
}

// printTemporalLink prints the Temporal Web UI page of workflowID ("Temporal UI: http://…").
func printTemporalLink(w io.Writer, workflowID string) {
	fmt.Fprintf(w, "Temporal UI: %s\n", workflow.UIWorkflowURL(temporalUIURL(), temporalNamespace(), workflowID))
}

func newTemporalCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "temporal", Short: "Prepare an external Temporal cluster for Sluice"}
	var cfg workflow.Config
	cfg.HostPort, cfg.Namespace = os.Getenv("TEMPORAL_ADDRESS"), temporalNamespace()
	if cfg.HostPort == "" {
		cfg.HostPort = fmt.Sprintf("127.0.0.1:%d", devstack.DefaultTemporalPort)
	}
	setup := &cobra.Command{
		Use:   "setup",
		Short: "Register Sluice's search attributes in a Temporal namespace (idempotent)",
		Long: `sluice temporal setup adds the custom search attributes Sluice's workflows carry (SluiceNamespace,
SluiceKind, SluicePipeline, SluiceExperiment, SluiceRunName, SluiceJobName, SluiceOwner, SluicePhase as
Keyword, SluiceFailedTasks as KeywordList) to the namespace, through Temporal's operator API. Attributes
that exist are left alone. Services do the same at start; run this once by hand when they may not (a
namespace whose operator API needs an admin's credentials). sluice dev's embedded Temporal needs nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Temporal's client logs at info ("No logger configured" without one); only its warnings
			// and errors are worth a CLI user's terminal.
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			c, err := workflow.Dial(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer c.Close()
			added, err := workflow.RegisterSearchAttributes(cmd.Context(), c, cfg.Namespace)
			if err != nil {
				return err
			}
			names := make([]string, 0)
			for n := range workflow.SearchAttributeTypes() {
				names = append(names, n)
			}
			sort.Strings(names)
			isNew := map[string]bool{}
			for _, n := range added {
				isNew[n] = true
			}
			for _, n := range names {
				state := "present"
				if isNew[n] {
					state = "added"
				}
				fmt.Fprintf(o.Out, "%-18s %-12s %s\n", n, workflow.SearchAttributeTypes()[n].String(), state)
			}
			fmt.Fprintf(o.Out, "namespace %s on %s: %d search attributes added\n", cfg.Namespace, cfg.HostPort, len(added))
			return nil
		},
	}
	setup.Flags().StringVar(&cfg.HostPort, "address", cfg.HostPort, "Temporal frontend host:port (env TEMPORAL_ADDRESS)")
	setup.Flags().StringVar(&cfg.Namespace, "namespace", cfg.Namespace, "Temporal namespace (env TEMPORAL_NAMESPACE)")
	cmd.AddCommand(setup)
	return cmd
}
