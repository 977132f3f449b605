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

	"github.com/sluice-ml/sluice/services/training/api/trainingv1"
	trainingapp "github.com/sluice-ml/sluice/services/training/app"
)

func init() {
	devServices = append(devServices, trainingapp.Build)
	extraCommands = append(extraCommands, newTrainCmd, newJobsCmd)
}

func jobsPath(ns string, parts ...string) string {
	p := "/apis/training/v1/namespaces/" + url.PathEscape(ns) + "/jobs"
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// jobRef splits a job argument, NAME or KIND/NAME (tfjob/mnist,
// PyTorchJob/mnist), with --kind as the default kind. The kind is part of
// a job's identity: a TFJob and a PyTorchJob may share a name.
func jobRef(arg, kindFlag string) (kind, name string, err error) {
	kind = kindFlag
	name = arg
	if k, n, ok := strings.Cut(arg, "/"); ok {
		kind, name = k, n
	}
	if kind == "" {
		return "", name, nil
	}
	k := trainingv1.KindOf(kind)
	if k == "" {
		return "", "", usageError(fmt.Errorf("kind %q: want TFJob or PyTorchJob", kind))
	}
	return k, name, nil
}

// withKind adds ?kind= to a job path when kind is set (extra holds more query values).
func withKind(p, kind string, extra url.Values) string {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	if kind != "" {
		q.Set("kind", kind)
	}
	if len(q) == 0 {
		return p
	}
	return p + "?" + q.Encode()
}

func newTrainCmd(o *Options) *cobra.Command {
	var file, ns string
	var watch bool
	cmd := &cobra.Command{
		Use:   "train -f JOB.yaml [--watch]",
		Short: "Submit a TFJob or PyTorchJob (kubeflow.org/v1 YAML or JSON); --watch shows its replicas until it finishes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usageError(fmt.Errorf("-f: a job file is required"))
			}
			var src []byte
			var err error
			if file == "-" {
				src, err = io.ReadAll(os.Stdin)
			} else {
				src, err = os.ReadFile(file)
			}
			if err != nil {
				return usageError(err)
			}
			if ns == "" {
				var probe struct {
					Metadata struct{ Namespace string } `json:"metadata"`
				}
				_ = yaml.Unmarshal(src, &probe)
				ns = probe.Metadata.Namespace
			}
			if ns == "" {
				ns = "default"
			}
			var created trainingapp.JobCreated
			hdr := http.Header{"Content-Type": {"application/yaml"}}
			if err := o.client().do(cmd.Context(), http.MethodPost, jobsPath(ns), hdr, bytes.NewReader(src), &created); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "%s %s/%s created (workflow %s)\n", created.Kind, created.Namespace, created.Name, created.WorkflowID)
			if !watch {
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return o.watchJob(ctx, created.Kind, created.Namespace, created.Name)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "job file (YAML or JSON; - for stdin)")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "", "namespace (default: the job's metadata.namespace, else default)")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "show the replicas live until the job finishes; exit 1 when it fails")
	return cmd
}

func (o *Options) getJob(ctx context.Context, kind, ns, name string) (trainingv1.JobView, error) {
	var v trainingv1.JobView
	err := o.client().do(ctx, http.MethodGet, withKind(jobsPath(ns, name), kind, nil), nil, nil, &v)
	return v, err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// watchJob redraws the replica table (in place on a terminal, else each
// time it changes) until the job succeeds or fails. The last table shows
// the replicas' final states: once the job has finished, it waits (up to
// settleTimeout) for replicas its cleanPodPolicy stops to leave Running.
func (o *Options) watchJob(ctx context.Context, kind, ns, name string) error {
	tty := isTerminal(o.Out)
	start := time.Now()
	last, lines := "", 0
	var finishedAt time.Time
	for {
		v, err := o.getJob(ctx, kind, ns, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if kind == "" {
			kind = v.Kind
		}
		finished := v.State == trainingv1.JobSucceeded || v.State == trainingv1.JobFailed
		if finished && finishedAt.IsZero() {
			finishedAt = time.Now()
		}
		settling := finished && replicasRunning(v) && time.Since(finishedAt) < settleTimeout
		if settling {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "%s %s/%s  %s  (%.0fs)\n", v.Kind, v.Namespace, v.Name, stateOrPending(v.State), time.Since(start).Seconds())
		writeReplicaTable(&buf, v)
		table := buf.String()
		// The elapsed time changes every refresh; compare without it.
		key := strings.SplitN(table, "(", 2)[0] + table[strings.Index(table, "\n"):]
		if key != last || tty {
			if tty && lines > 0 {
				fmt.Fprintf(o.Out, "\x1b[%dA\x1b[J", lines)
			}
			fmt.Fprint(o.Out, table)
			if !tty {
				fmt.Fprintln(o.Out)
			}
			last, lines = key, strings.Count(table, "\n")
		}
		st := v.Job.Status()
		switch v.State {
		case trainingv1.JobSucceeded:
			if v.ModelURI != "" {
				fmt.Fprintf(o.Out, "model exported to %s\n", v.ModelURI)
			}
			return nil
		case trainingv1.JobFailed:
			msg := ""
			if n := len(st.Conditions); n > 0 {
				msg = st.Conditions[n-1].Message
			}
			return fmt.Errorf("job %s/%s failed: %s", ns, name, msg)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// settleTimeout bounds how long a finished job's watch waits for replicas
// stopped by cleanPodPolicy to leave Running (with cleanPodPolicy None they
// keep running, and are shown so).
const settleTimeout = 5 * time.Second

func replicasRunning(v trainingv1.JobView) bool {
	for _, r := range v.Replicas {
		if r.State == trainingv1.ReplicaRunning {
			return true
		}
	}
	return false
}

func stateOrPending(s trainingv1.JobConditionType) string {
	if s == "" {
		return "Pending"
	}
	return string(s)
}

func writeReplicaTable(w io.Writer, v trainingv1.JobView) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tSTATE\tATTEMPT\tRESTARTS\tEXIT\tADDRESS")
	for _, r := range v.Replicas {
		exit := "-"
		if r.ExitCode != nil {
			exit = fmt.Sprint(*r.ExitCode)
			if r.Reason != "" && r.Reason != "Completed" {
				exit += " (" + r.Reason + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", r.LogName(), r.State, r.Attempt, r.Restarts, exit, r.Address)
	}
	_ = tw.Flush()
}

func newJobsCmd(o *Options) *cobra.Command {
	var ns, kindFlag string
	cmd := &cobra.Command{Use: "jobs", Aliases: []string{"job"}, Short: "Inspect and control training jobs (TFJob, PyTorchJob)",
		Long: "Inspect and control training jobs. A job is named NAME, or KIND/NAME (tfjob/mnist, pytorchjob/mnist) when a TFJob\n" +
			"and a PyTorchJob share the name (the kind is part of a job's identity, as in Kubernetes); --kind does the same."}
	cmd.PersistentFlags().StringVarP(&ns, "namespace", "n", "default", "namespace")
	cmd.PersistentFlags().StringVar(&kindFlag, "kind", "", "job kind, TFJob or PyTorchJob (needed when both kinds have a job of that name; filters list)")

	list := &cobra.Command{Use: "list", Short: "List the namespace's jobs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, _, err := jobRef("", kindFlag)
			if err != nil {
				return err
			}
			var out trainingapp.JobList
			if err := o.client().do(cmd.Context(), http.MethodGet, withKind(jobsPath(ns), kind, nil), nil, nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(o.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKIND\tSTATE\tREPLICAS\tRESTARTS\tAGE")
			for _, v := range out.Jobs {
				age := "-"
				if ct := v.Job.Meta().CreationTimestamp; !ct.IsZero() {
					age = time.Since(ct.Time).Round(time.Second).String()
				} else if st := v.Job.Status().StartTime; st != nil {
					age = time.Since(st.Time).Round(time.Second).String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", v.Name, v.Kind, stateOrPending(v.State), len(v.Replicas), v.Restarts, age)
			}
			return tw.Flush()
		}}

	var watch bool
	get := &cobra.Command{Use: "get [KIND/]NAME", Short: "Show a job's conditions and replicas", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := jobRef(args[0], kindFlag)
			if err != nil {
				return err
			}
			if watch {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return o.watchJob(ctx, kind, ns, name)
			}
			v, err := o.getJob(cmd.Context(), kind, ns, name)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "%s %s/%s  %s\n", v.Kind, v.Namespace, v.Name, stateOrPending(v.State))
			st := v.Job.Status()
			if st.StartTime != nil {
				fmt.Fprintf(o.Out, "started   %s\n", st.StartTime.Format(time.RFC3339))
			}
			if st.CompletionTime != nil {
				fmt.Fprintf(o.Out, "completed %s\n", st.CompletionTime.Format(time.RFC3339))
			}
			if v.ModelURI != "" {
				fmt.Fprintf(o.Out, "model     %s\n", v.ModelURI)
			}
			fmt.Fprintln(o.Out, "\nCONDITIONS")
			tw := tabwriter.NewWriter(o.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TYPE\tSTATUS\tREASON\tMESSAGE")
			for _, c := range st.Conditions {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.Message)
			}
			_ = tw.Flush()
			fmt.Fprintln(o.Out, "\nREPLICAS")
			writeReplicaTable(o.Out, v)
			fmt.Fprintln(o.Out)
			printTemporalLink(o.Out, trainingv1.WorkflowID(v.Kind, v.Namespace, v.Name)) // temporal.go
			return nil
		}}
	get.Flags().BoolVarP(&watch, "watch", "w", false, "follow until the job finishes")

	var replica string
	var attempt int
	logs := &cobra.Command{Use: "logs [KIND/]NAME --replica worker-0", Short: "Print a replica's log (latest attempt unless --attempt)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, name, err := jobRef(args[0], kindFlag)
			if err != nil {
				return err
			}
			q := url.Values{"replica": {replica}}
			if attempt > 0 {
				q.Set("attempt", fmt.Sprint(attempt))
			}
			return o.client().do(cmd.Context(), http.MethodGet, withKind(jobsPath(ns, name, "logs"), kind, q), nil, nil, o.Out)
		}}
	logs.Flags().StringVarP(&replica, "replica", "r", "", "replica, e.g. chief-0, worker-1 (required)")
	logs.Flags().IntVar(&attempt, "attempt", 0, "attempt number (default: latest)")
	_ = logs.MarkFlagRequired("replica")

	action := func(use, short, method, suffix, done string) *cobra.Command {
		return &cobra.Command{Use: use + " [KIND/]NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				kind, name, err := jobRef(args[0], kindFlag)
				if err != nil {
					return err
				}
				p := jobsPath(ns, name)
				if suffix != "" {
					p += "/" + suffix
				}
				if err := o.client().do(cmd.Context(), method, withKind(p, kind, nil), nil, nil, nil); err != nil {
					return err
				}
				what := "job"
				if kind != "" {
					what = kind
				}
				fmt.Fprintf(o.Out, "%s %s/%s %s\n", what, ns, name, done)
				return nil
			}}
	}
	cmd.AddCommand(list, get, logs,
		action("delete", "Delete a job (its replicas are terminated)", http.MethodDelete, "", "deleted"),
		action("suspend", "Suspend a job (its replicas are terminated until resumed)", http.MethodPost, "suspend", "suspending"),
		action("resume", "Resume a suspended job", http.MethodPost, "resume", "resuming"))
	return cmd
}
