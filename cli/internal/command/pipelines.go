package command

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/services/pipelines/api/pipelinesv1"
	pipelinesapp "github.com/sluice-ml/sluice/services/pipelines/app"
)

func init() {
	devServices = append(devServices, pipelinesapp.Build)
	extraCommands = append(extraCommands, newPipelineCmd, newRunCmd)
}

func newPipelineCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "pipeline", Aliases: []string{"pipelines"}, Short: "Run and manage pipelines (native YAML or KFP v2 IR)"}
	cmd.AddCommand(newPipelineRunCmd(o), newPipelineUploadCmd(o), newPipelineListCmd(o))
	return cmd
}

// parseParams turns -p k=v flags into JSON values by the type the pipeline src declares for each input
// (pipelinesapp.TypedParameters): a STRING input receives exactly the text after the first '='.
func parseParams(src []byte, kvs []string) (map[string]any, error) {
	texts := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-p %q: want name=value", kv)
		}
		texts[k] = v
	}
	return pipelinesapp.TypedParameters(src, texts)
}

// parseArtifacts reads -a name=uri flags (the pipeline's input artifacts, by s3:// URI).
func parseArtifacts(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("-a %q: want name=s3://bucket/key", kv)
		}
		out[k] = v
	}
	return out, nil
}

func newPipelineRunCmd(o *Options) *cobra.Command {
	var params, arts []string
	var watch, noCache bool
	var experiment, name, ns string
	cmd := &cobra.Command{
		Use:   "run FILE [-p name=value ...] [-a name=s3://bucket/key ...] [-n NAMESPACE] [--watch]",
		Short: "Start a run of a pipeline file; --watch follows every task until the run ends",
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
			a, err := parseArtifacts(arts)
			if err != nil {
				return usageError(err)
			}
			req := pipelinesv1.RunRequest{Spec: string(src), Parameters: p, InputArtifacts: a, ExperimentID: experiment, RunName: name, DisableCache: noCache, Namespace: ns}
			var created pipelinesapp.RunCreated
			if err := o.client().do(cmd.Context(), http.MethodPost, "/apis/v1/runs", nil, req, &created); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "run %s started (pipeline %s, namespace %s)\n", created.RunID, created.Pipeline, created.Namespace)
			for _, w := range created.Warnings {
				fmt.Fprintf(o.Err, "warning: %s\n", w)
			}
			if !watch {
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.watchRun(ctx, created.RunID)
		},
	}
	cmd.Flags().StringArrayVarP(&params, "param", "p", nil, "run parameter name=value, converted by the input's declared type (STRING: the exact text; LIST/STRUCT: JSON)")
	cmd.Flags().StringArrayVarP(&arts, "artifact", "a", nil, "pipeline input artifact name=s3://bucket/key (a directory: end the URI with /)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the run's tasks until it ends")
	cmd.Flags().StringVar(&experiment, "experiment", "", "experiment id")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace of the run (default: the experiment's, else default)")
	cmd.Flags().StringVar(&name, "name", "", "run name")
	cmd.Flags().BoolVar(&noCache, "no-cache", false, "disable caching for this run")
	return cmd
}

func (o *Options) getRun(ctx context.Context, id string) (pipelinesapp.RunDetail, error) {
	var d pipelinesapp.RunDetail
	err := o.client().do(ctx, http.MethodGet, "/apis/v1/runs/"+url.PathEscape(id), nil, nil, &d)
	return d, err
}

var runDone = map[string]bool{pipelinesv1.RunSucceeded: true, pipelinesv1.RunFailed: true, pipelinesv1.RunCancelled: true}

// watchRun prints each task transition as it happens, then a summary table; it returns an error (exit 1)
// when the run did not succeed.
func (o *Options) watchRun(ctx context.Context, id string) error {
	seen := map[string]string{}
	start := time.Now()
	for {
		d, err := o.getRun(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, t := range d.Tasks {
			key := t.State + fmt.Sprint(t.Attempts)
			if seen[t.Path] == key {
				continue
			}
			seen[t.Path] = key
			line := fmt.Sprintf("%6.1fs  %-28s %-10s", time.Since(start).Seconds(), t.Path, t.State)
			if t.Attempts > 1 {
				line += fmt.Sprintf(" attempt %d", t.Attempts)
			}
			if t.Error != "" && t.State != pipelinesv1.TaskRunning {
				line += "  " + firstLine(t.Error)
			}
			fmt.Fprintln(o.Out, line)
		}
		if runDone[d.State] {
			o.printRun(d)
			if d.State != pipelinesv1.RunSucceeded {
				return fmt.Errorf("run %s %s: %s", id, d.State, firstLine(d.Error))
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

func (o *Options) printRun(d pipelinesapp.RunDetail) {
	fmt.Fprintf(o.Out, "\nrun %s (%s): %s\n", d.RunID, d.PipelineName, d.State)
	if d.Error != "" {
		fmt.Fprintf(o.Out, "error: %s\n", d.Error)
	}
	tw := tabwriter.NewWriter(o.Out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tSTATE\tATTEMPTS\tOUTPUTS")
	tasks := append([]pipelinesv1.TaskState(nil), d.Tasks...)
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].Path < tasks[j].Path })
	for _, t := range tasks {
		var outs []string
		if t.Outputs != nil {
			for _, k := range sortedKeys(t.Outputs.Artifacts) {
				a := t.Outputs.Artifacts[k]
				outs = append(outs, fmt.Sprintf("%s=%s (%s)", k, a.URI, shortDigest(a.Digest)))
			}
			for _, k := range sortedKeys(t.Outputs.Parameters) {
				b, _ := json.Marshal(t.Outputs.Parameters[k])
				outs = append(outs, fmt.Sprintf("%s=%s", k, firstLine(string(b))))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", t.Path, t.State, t.Attempts, strings.Join(outs, ", "))
	}
	_ = tw.Flush()
	printTemporalLink(o.Out, d.RunID) // temporal.go
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func newPipelineUploadCmd(o *Options) *cobra.Command {
	var name, ns string
	cmd := &cobra.Command{
		Use:   "upload FILE [--name NAME] [-n NAMESPACE]",
		Short: "Upload a pipeline (validated first) to run it by name later",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return usageError(err)
			}
			var out map[string]any
			body := map[string]string{"display_name": name, "spec": string(src), "namespace": ns}
			if err := o.client().do(cmd.Context(), http.MethodPost, "/apis/v1/pipelines", nil, body, &out); err != nil {
				return err
			}
			b, _ := json.MarshalIndent(out, "", "  ")
			fmt.Fprintln(o.Out, string(b))
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "pipeline name (default: the spec's name)")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace of the pipeline (default: none, a pipeline shared with every namespace, which only an admin may upload)")
	return cmd
}

// namespaceQuery is "?namespace=NS" for a list verb's -n, or "" (every namespace the caller may read).
func namespaceQuery(ns string) string {
	if ns == "" {
		return ""
	}
	return "?" + url.Values{"namespace": {ns}}.Encode()
}

func newPipelineListCmd(o *Options) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use: "list [-n NAMESPACE]", Short: "List uploaded pipelines (shared ones have no namespace)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Pipelines []map[string]any `json:"pipelines"`
			}
			if err := o.client().do(cmd.Context(), http.MethodGet, "/apis/v1/pipelines"+namespaceQuery(ns), nil, nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(o.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PIPELINE ID\tNAMESPACE\tNAME\tCREATED")
			for _, p := range out.Pipelines {
				pns, _ := p["namespace"].(string)
				if pns == "" {
					pns = "(shared)"
				}
				fmt.Fprintf(tw, "%v\t%s\t%v\t%v\n", p["pipeline_id"], pns, p["display_name"], p["created_at"])
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "only this namespace's pipelines (default: every one you may read, and the shared ones)")
	return cmd
}

func newRunCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "run", Aliases: []string{"runs"}, Short: "Inspect and control pipeline runs"}
	get := &cobra.Command{Use: "get RUN_ID", Short: "Show a run and its tasks", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := o.getRun(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			o.printRun(d)
			return nil
		}}
	var watch bool
	get.Flags().BoolVarP(&watch, "watch", "w", false, "follow until the run ends")
	get.RunE = func(cmd *cobra.Command, args []string) error {
		if watch {
			return o.watchRun(cmd.Context(), args[0])
		}
		d, err := o.getRun(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		o.printRun(d)
		return nil
	}
	var listNS string
	list := &cobra.Command{Use: "list [-n NAMESPACE]", Short: "List runs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Runs []pipelinesapp.RunSummary `json:"runs"`
			}
			if err := o.client().do(cmd.Context(), http.MethodGet, "/apis/v1/runs"+namespaceQuery(listNS), nil, nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(o.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN ID\tNAMESPACE\tPIPELINE\tSTATE\tCREATED")
			for _, r := range out.Runs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.RunID, r.Namespace, r.Pipeline, r.State, r.CreatedAt.Local().Format(time.DateTime))
			}
			return tw.Flush()
		}}
	list.Flags().StringVarP(&listNS, "namespace", "n", "", "only this namespace's runs (default: every namespace you may read)")
	cancel := &cobra.Command{Use: "cancel RUN_ID", Short: "Cancel a run (exit handlers still run)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Cancelling an ended run is a no-op on the API (as in KFP); say so instead of "cancelling".
			if d, err := o.getRun(cmd.Context(), args[0]); err == nil && runDone[d.State] {
				fmt.Fprintf(o.Out, "run %s already ended (%s); nothing to cancel\n", args[0], d.State)
				return nil
			}
			if err := o.client().do(cmd.Context(), http.MethodPost, "/apis/v1/runs/"+url.PathEscape(args[0])+"/cancel", nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "run %s cancelling\n", args[0])
			return nil
		}}
	retry := &cobra.Command{Use: "retry RUN_ID", Short: "Re-run a failed run, reusing the outputs of tasks that succeeded", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var created pipelinesapp.RunCreated
			if err := o.client().do(cmd.Context(), http.MethodPost, "/apis/v1/runs/"+url.PathEscape(args[0])+"/retry", nil, nil, &created); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "run %s started (retry of %s)\n", created.RunID, args[0])
			return nil
		}}
	var task string
	logs := &cobra.Command{Use: "logs RUN_ID [--task PATH]", Short: "Print step logs", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := ""
			if task != "" {
				q = "?task=" + url.QueryEscape(task)
			}
			return o.client().do(cmd.Context(), http.MethodGet, "/apis/v1/runs/"+url.PathEscape(args[0])+"/logs"+q, nil, nil, o.Out)
		}}
	logs.Flags().StringVar(&task, "task", "", "task path, e.g. join or for-loop-2/3/train")
	cmd.AddCommand(get, list, cancel, retry, logs)
	return cmd
}
