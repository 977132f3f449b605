package command

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	pipelinesapp "github.com/sluice-ml/sluice/services/pipelines/app"
)

func init() {
	extraCommands = append(extraCommands, newRecurringRunCmd)
}

// newRecurringRunCmd: `sluice recurring-run create|list|get|enable|disable|delete` over
// /apis/v1/recurringruns (KFP recurring runs backed by Temporal Schedules).
func newRecurringRunCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "recurring-run", Aliases: []string{"recurring-runs", "schedule", "schedules"},
		Short: "Run a pipeline on a cron schedule; list, disable (pause), enable (resume) and delete schedules"}
	var params []string
	var cronExpr, name, experiment, ns string
	var paused bool
	create := &cobra.Command{
		Use:   "create FILE --cron EXPR [--name N] [-p name=value ...] [--paused]",
		Short: "Schedule runs of a pipeline file (cron: KFP's 6 fields with seconds first, 5 fields, or @every 1h)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return usageError(err)
			}
			p, err := parseParams(src, params)
			if err != nil {
				return usageError(err)
			}
			if name == "" {
				name = args[0]
			}
			req := pipelinesapp.RecurringRunRequest{Name: name, Cron: cronExpr, Paused: paused,
				Run: pipelinesv1.RunRequest{Spec: string(src), Parameters: p, ExperimentID: experiment, Namespace: ns}}
			var out map[string]string
			if err := o.client().do(cmd.Context(), http.MethodPost, "/apis/v1/recurringruns", nil, req, &out); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "recurring run %s created\n", out["recurring_run_id"])
			return nil
		},
	}
	create.Flags().StringVar(&cronExpr, "cron", "", "cron expression (required)")
	create.Flags().StringVar(&name, "name", "", "display name (default: the file name)")
	create.Flags().StringVar(&experiment, "experiment", "", "experiment id")
	create.Flags().StringVarP(&ns, "namespace", "n", "", "namespace of the recurring run and its runs (default: the experiment's, else default)")
	create.Flags().StringArrayVarP(&params, "param", "p", nil, "run parameter name=value, converted by the input's declared type")
	create.Flags().BoolVar(&paused, "paused", false, "create it disabled")
	_ = create.MarkFlagRequired("cron")

	var listNS string
	list := &cobra.Command{
		Use: "list [-n NAMESPACE]", Short: "List recurring runs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Runs []pipelinesapp.RecurringRun `json:"recurring_runs"`
			}
			if err := o.client().do(cmd.Context(), http.MethodGet, "/apis/v1/recurringruns"+namespaceQuery(listNS), nil, nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(o.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAMESPACE\tNAME\tPIPELINE\tCRON\tSTATUS\tNEXT RUN")
			for _, r := range out.Runs {
				next := "-"
				if r.NextRunTime != nil {
					next = r.NextRunTime.Format("2006-01-02T15:04:05Z07:00")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Namespace, r.DisplayName, r.PipelineName, r.Cron, r.Status, next)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVarP(&listNS, "namespace", "n", "", "only this namespace's recurring runs (default: every namespace you may read)")
	verb := func(use, short, method, suffix string) *cobra.Command {
		return &cobra.Command{
			Use: use + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var out pipelinesapp.RecurringRun
				var dst any = &out
				if method == http.MethodDelete {
					dst = nil
				}
				if err := o.client().do(cmd.Context(), method, "/apis/v1/recurringruns/"+url.PathEscape(args[0])+suffix, nil, nil, dst); err != nil {
					return err
				}
				if method == http.MethodDelete {
					fmt.Fprintf(o.Out, "recurring run %s deleted\n", args[0])
					return nil
				}
				fmt.Fprintf(o.Out, "recurring run %s %s\n", out.ID, out.Status)
				return nil
			},
		}
	}
	cmd.AddCommand(create, list,
		verb("get", "Show a recurring run's status", http.MethodGet, ""),
		verb("enable", "Resume a recurring run (KFP :enable)", http.MethodPost, ":enable"),
		verb("disable", "Pause a recurring run (KFP :disable)", http.MethodPost, ":disable"),
		verb("delete", "Delete a recurring run", http.MethodDelete, ""))
	return cmd
}
