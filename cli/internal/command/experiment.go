package command

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/services/tuning/api/tuningv1"
	tuningapp "github.com/sluice-ml/sluice/services/tuning/app"
)

func init() {
	extraCommands = append(extraCommands, newExperimentCmd)
	devServices = append(devServices, tuningapp.Build)
}

func experimentsPath(ns string, parts ...string) string {
	p := "/apis/tuning/v1/namespaces/" + url.PathEscape(ns) + "/experiments"
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// newExperimentCmd: Katib Experiments (kubeflow.org/v1beta1) run by the tuning service.
func newExperimentCmd(o *Options) *cobra.Command {
	var ns string
	cmd := &cobra.Command{
		Use:     "experiment",
		Aliases: []string{"experiments", "exp"},
		Short:   "Hyperparameter tuning: create, watch, list and delete Katib Experiments (kubeflow.org/v1beta1)",
		Long: `An Experiment (Katib's kubeflow.org/v1beta1 YAML, unmodified) searches its parameters with the random,
grid, tpe or bayesianoptimization algorithm; every trial is a TFJob or PyTorchJob of the training service
built from spec.trialTemplate (a plain batch/v1 Job runs as a one-Worker TFJob), and its metrics come from the primary replica's log (StdOut collector, "name=value"
lines) or from TensorFlow event files (TensorFlowEvent collector).`,
	}
	cmd.PersistentFlags().StringVarP(&ns, "namespace", "n", "", "namespace (create: default the document's metadata.namespace, else default)")
	nsOr := func() string {
		if ns == "" {
			return "default"
		}
		return ns
	}
	var file string
	var watch bool
	create := &cobra.Command{
		Use:   "create -f EXPERIMENT.yaml [--watch]",
		Short: "Create an experiment; --watch shows its trials live until it finishes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError(fmt.Errorf("-f: an experiment file is required"))
			}
			src, err := readFileOrStdin(file)
			if err != nil {
				return usageError(err)
			}
			target := ns
			if target == "" {
				var probe struct {
					Metadata struct{ Namespace string } `json:"metadata"`
				}
				_ = yaml.Unmarshal(src, &probe)
				target = probe.Metadata.Namespace
			}
			if target == "" {
				target = "default"
			}
			var e tuningv1.Experiment
			hdr := http.Header{"Content-Type": {"application/yaml"}}
			if err := o.client().do(cmd.Context(), http.MethodPost, experimentsPath(target), hdr, bytes.NewReader(src), &e); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "experiment %s/%s created\n", e.Metadata.Namespace, e.Metadata.Name)
			if !watch {
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.watchExperiment(ctx, e.Metadata.Namespace, e.Metadata.Name)
		},
	}
	create.Flags().StringVarP(&file, "filename", "f", "", "experiment file (YAML or JSON; - for stdin)")
	create.Flags().BoolVarP(&watch, "watch", "w", false, "show the trial table live until the experiment finishes; exit 1 when it fails")

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show an experiment's conditions, optimal trial and trials",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			var v tuningv1.ExperimentView
			if err := o.client().do(cmd.Context(), http.MethodGet, experimentsPath(nsOr(), argv[0]), nil, nil, &v); err != nil {
				return err
			}
			writeExperiment(o.Out, v)
			return nil
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the namespace's experiments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l tuningv1.ExperimentList
			if err := o.client().do(cmd.Context(), http.MethodGet, experimentsPath(nsOr()), nil, nil, &l); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tALGORITHM\tTRIALS\tSUCCEEDED\tFAILED\tOPTIMAL TRIAL")
			for _, e := range l.Items {
				best := "-"
				if c := e.Status.CurrentOptimalTrial; c != nil {
					best = c.BestTrialName
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", e.Metadata.Name, orDash(e.State()), e.Spec.Algorithm.AlgorithmName,
					e.Status.Trials, e.Status.TrialsSucceeded, e.Status.TrialsFailed, best)
			}
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an experiment: running trials are stopped and every trial's training job is deleted",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := o.client().do(cmd.Context(), http.MethodDelete, experimentsPath(nsOr(), argv[0]), nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "experiment %s/%s: delete requested\n", nsOr(), argv[0])
			return nil
		},
	}
	cmd.AddCommand(create, get, list, del)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeExperiment prints the experiment's state line, its optimal trial and the trial table.
func writeExperiment(w io.Writer, v tuningv1.ExperimentView) {
	e := v.Experiment
	fmt.Fprintf(w, "Experiment %s/%s  %s  algorithm=%s  trials=%d running=%d succeeded=%d failed=%d\n", e.Metadata.Namespace, e.Metadata.Name,
		orDash(e.State()), e.Spec.Algorithm.AlgorithmName, e.Status.Trials, e.Status.TrialsRunning, e.Status.TrialsSucceeded, e.Status.TrialsFailed)
	for _, c := range e.Status.Conditions {
		if c.Status == "True" && c.Message != "" && (c.Type == tuningv1.ConditionSucceeded || c.Type == tuningv1.ConditionFailed) {
			fmt.Fprintf(w, "%s: %s\n", c.Reason, c.Message)
		}
	}
	if c := e.Status.CurrentOptimalTrial; c != nil {
		fmt.Fprintf(w, "Optimal trial %s: %s  %s\n", c.BestTrialName, assignments(c.ParameterAssignments), metrics(c.Observation))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TRIAL\tSTATE\tPARAMETERS\tMETRICS (latest)")
	for _, t := range v.TrialsView {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, orDash(t.State()), assignments(t.ParameterAssignments), metrics(t.Observation))
	}
	_ = tw.Flush()
}

func assignments(as []tuningv1.ParameterAssignment) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.Name + "=" + a.Value
	}
	return strings.Join(s, " ")
}

func metrics(o tuningv1.Observation) string {
	if len(o.Metrics) == 0 {
		return "-"
	}
	s := make([]string, len(o.Metrics))
	for i, m := range o.Metrics {
		s[i] = m.Name + "=" + m.Latest
	}
	return strings.Join(s, " ")
}

// watchExperiment redraws the trial table (in place on a terminal, else each time it changes) until
// the experiment succeeds or fails.
func (o *Options) watchExperiment(ctx context.Context, ns, name string) error {
	tty := isTerminal(o.Out)
	last, lines := "", 0
	for {
		var v tuningv1.ExperimentView
		if err := o.client().do(ctx, http.MethodGet, experimentsPath(ns, name), nil, nil, &v); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var buf bytes.Buffer
		writeExperiment(&buf, v)
		table := buf.String()
		if table != last {
			if tty && lines > 0 {
				fmt.Fprintf(o.Out, "\x1b[%dA\x1b[J", lines)
			}
			fmt.Fprint(o.Out, table)
			if !tty {
				fmt.Fprintln(o.Out)
			}
			last, lines = table, strings.Count(table, "\n")
		}
		switch v.State() {
		case tuningv1.ConditionSucceeded:
			return nil
		case tuningv1.ConditionFailed:
			return fmt.Errorf("experiment %s/%s failed", ns, name)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}
