package command

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
)

func init() {
	extraCommands = append(extraCommands, newTensorboardCmd)
}

func tensorboardPath(ns, name string) string {
	p := "/apis/tensorboard.kubeflow.org/v1alpha1/namespaces/" + url.PathEscape(ns) + "/tensorboards"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// newTensorboardCmd: Tensorboard resources (tensorboard.kubeflow.org/v1alpha1), served by the notebooks
// service; the same token rules as `sluice notebook`.
func newTensorboardCmd(o *Options) *cobra.Command {
	n := &notebookOptions{}
	cmd := &cobra.Command{
		Use:     "tensorboard",
		Aliases: []string{"tensorboards", "tb"},
		Short:   "Create, list and delete Tensorboards (TensorBoard's scalar API and curves over event files in S3 or a volume)",
		Long: `A Tensorboard (tensorboard.kubeflow.org/v1alpha1) serves the events.out.tfevents.* files under its
spec.logspath — s3://<bucket>/<prefix> or pvc://<claim>/<path> — at /tensorboard/<namespace>/<name>/:
a page with the scalar curves, and TensorBoard's data API (data/runs, data/plugin/scalars/tags,
data/plugin/scalars/scalars?run=&tag=[&format=csv]). Every verb needs an API token granted the namespace:
--token, $SLUICE_TOKEN, or (with sluice dev) the generated token in <data-dir>/notebooks/dev-token.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&n.namespace, "namespace", "n", "default", "namespace of the tensorboard")
	pf.StringVar(&n.token, "token", "", "Sluice API token (env SLUICE_TOKEN; default: the sluice dev token)")
	pf.StringVar(&n.dataDir, "data-dir", "", "data dir of sluice dev, to read its token (env SLUICE_DATA_DIR, default ./.sluice)")
	cmd.AddCommand(newTensorboardCreateCmd(o, n), newTensorboardListCmd(o, n), newTensorboardDeleteCmd(o, n))
	return cmd
}

func newTensorboardCreateCmd(o *Options, n *notebookOptions) *cobra.Command {
	var logspath, file string
	cmd := &cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a Tensorboard from --logspath or a Kubeflow Tensorboard file (-f)",
		Example: `  sluice tensorboard create mnist --logspath s3://sluice/training/mnist/logs
  sluice tensorboard create -f tensorboard.yaml -n team-a`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			hdr, err := n.header()
			if err != nil {
				return err
			}
			var body any
			switch {
			case file != "":
				if len(argv) > 0 || logspath != "" {
					return usageError(errors.New("give either -f, or NAME with --logspath"))
				}
				b, err := readFileOrStdin(file)
				if err != nil {
					return usageError(err)
				}
				body = bytes.NewReader(b)
				hdr.Set("Content-Type", "application/yaml")
			case len(argv) == 1:
				if logspath == "" {
					return usageError(errors.New("--logspath is required (s3://<bucket>/<prefix> or pvc://<claim>/<path>)"))
				}
				body = notebooksv1.Tensorboard{
					APIVersion: notebooksv1.TensorboardAPIVersion, Kind: notebooksv1.TensorboardKind,
					Metadata: notebooksv1.ObjectMeta{Name: argv[0], Namespace: n.namespace},
					Spec:     notebooksv1.TensorboardSpec{LogsPath: logspath},
				}
			default:
				return usageError(errors.New("give a NAME with --logspath, or -f FILE"))
			}
			var tb notebooksv1.Tensorboard
			if err := o.client().do(cmd.Context(), http.MethodPost, tensorboardPath(n.namespace, ""), hdr, body, &tb); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "tensorboard %s/%s created: %s%s\n", tb.Metadata.Namespace, tb.Metadata.Name, strings.TrimRight(o.Server, "/"), tb.Status.URL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&logspath, "logspath", "", "where the event files are: s3://<bucket>/<prefix> or pvc://<claim>/<path>")
	f.StringVarP(&file, "file", "f", "", "tensorboard.kubeflow.org/v1alpha1 Tensorboard as YAML or JSON; - for stdin")
	return cmd
}

func newTensorboardListCmd(o *Options, n *notebookOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the namespace's Tensorboards",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hdr, err := n.header()
			if err != nil {
				return err
			}
			var list notebooksv1.TensorboardList
			if err := o.client().do(cmd.Context(), http.MethodGet, tensorboardPath(n.namespace, ""), hdr, nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tREADY\tLOGSPATH\tURL")
			for _, tb := range list.Items {
				state := "-"
				if c := tb.Status.Conditions; len(c) > 0 {
					state = c[len(c)-1].DeploymentState
				}
				fmt.Fprintf(tw, "%s\t%s\t%d/1\t%s\t%s%s\n", tb.Metadata.Name, state, tb.Status.ReadyReplicas, tb.Spec.LogsPath, strings.TrimRight(o.Server, "/"), tb.Status.URL)
			}
			return tw.Flush()
		},
	}
}

func newTensorboardDeleteCmd(o *Options, n *notebookOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a Tensorboard (its event files stay where they are)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			hdr, err := n.header()
			if err != nil {
				return err
			}
			if err := o.client().do(cmd.Context(), http.MethodDelete, tensorboardPath(n.namespace, argv[0]), hdr, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "tensorboard %s/%s: delete requested\n", n.namespace, argv[0])
			return nil
		},
	}
}
