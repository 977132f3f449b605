package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	notebooksapp "github.com/sluice-ml/sluice/services/notebooks/app"
)

func init() {
	extraCommands = append(extraCommands, newNotebookCmd)
	devServices = append(devServices, notebooksapp.Build)
}

// notebookOptions are the flags every notebook verb shares.
type notebookOptions struct {
	namespace string
	token     string
	dataDir   string
	o         *Options
}

// authToken returns --token, else $SLUICE_TOKEN, else the token `sluice dev` generated in its data dir.
func (n *notebookOptions) authToken() (string, error) {
	if n.token != "" {
		return n.token, nil
	}
	if t := os.Getenv("SLUICE_TOKEN"); t != "" {
		return t, nil
	}
	dir := n.dataDir
	if dir == "" {
		dir = os.Getenv("SLUICE_DATA_DIR")
	}
	if dir == "" {
		dir = ".sluice"
	}
	b, err := os.ReadFile(notebooksapp.DevTokenPath(dir))
	if err != nil {
		if t := n.o.token(); t != "" {
			return t, nil
		}
		return "", usageError(fmt.Errorf("no API token: pass --token, set SLUICE_TOKEN, run `sluice login`, or run from the directory of `sluice dev` (looked for %s)", notebooksapp.DevTokenPath(dir)))
	}
	return strings.TrimSpace(string(b)), nil
}

func (n *notebookOptions) header() (http.Header, error) {
	tok, err := n.authToken()
	if err != nil {
		return nil, err
	}
	return http.Header{"Authorization": {"Bearer " + tok}}, nil
}

func (n *notebookOptions) path(name string) string {
	p := "/apis/notebooks/v1/namespaces/" + url.PathEscape(n.namespace) + "/notebooks"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

func newNotebookCmd(o *Options) *cobra.Command {
	n := &notebookOptions{o: o}
	cmd := &cobra.Command{
		Use:     "notebook",
		Aliases: []string{"notebooks", "nb"},
		Short:   "Create, list, stop, start, delete and open Jupyter notebook servers",
		Long: `Notebook servers run Jupyter behind the Sluice proxy at /notebook/<namespace>/<name>/.
Every verb needs an API token granted the namespace: --token, $SLUICE_TOKEN, or (with sluice dev) the
generated token in <data-dir>/notebooks/dev-token.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVarP(&n.namespace, "namespace", "n", "default", "namespace of the notebook")
	pf.StringVar(&n.token, "token", "", "Sluice API token (env SLUICE_TOKEN; default: the sluice dev token)")
	pf.StringVar(&n.dataDir, "data-dir", "", "data dir of sluice dev, to read its token (env SLUICE_DATA_DIR, default ./.sluice)")
	cmd.AddCommand(newNotebookCreateCmd(o, n), newNotebookListCmd(o, n), newNotebookOpenCmd(o, n),
		newNotebookControlCmd(o, n, "stop", "Stop a notebook server (its files stay)"),
		newNotebookControlCmd(o, n, "start", "Start a stopped notebook server again"),
		newNotebookControlCmd(o, n, "delete", "Delete a notebook (its work directory stays on disk)"))
	return cmd
}

func newNotebookCreateCmd(o *Options, n *notebookOptions) *cobra.Command {
	var file, image, cpu, memory string
	var env, args []string
	var stopped, wait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "create [NAME]",
		Short: "Create a notebook server from flags or a kubeflow.org/v1 Notebook file (-f), and wait until it runs",
		Example: `  sluice notebook create nb1 -n team-a
  sluice notebook create -f notebook.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			hdr, err := n.header()
			if err != nil {
				return err
			}
			var body any
			var name string
			switch {
			case file != "":
				if len(argv) > 0 {
					return usageError(errors.New("give either NAME or -f, not both"))
				}
				b, err := readFileOrStdin(file)
				if err != nil {
					return usageError(err)
				}
				body = bytes.NewReader(b)
				hdr.Set("Content-Type", "application/yaml")
			case len(argv) == 1:
				name = argv[0]
				l := notebooksv1.LocalNotebook{Name: name, Namespace: n.namespace, Image: image, Args: args, CPU: cpu, Memory: memory, Stopped: stopped}
				for _, kv := range env {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return usageError(fmt.Errorf("--env %q: want NAME=value", kv))
					}
					if l.Env == nil {
						l.Env = map[string]string{}
					}
					l.Env[k] = v
				}
				body = l
			default:
				return usageError(errors.New("give a NAME or -f FILE"))
			}
			ctx := cmd.Context()
			var nb notebooksv1.Notebook
			if err := o.client().do(ctx, http.MethodPost, n.path(""), hdr, body, &nb); err != nil {
				return err
			}
			name = nb.Metadata.Name
			fmt.Fprintf(o.Out, "notebook %s/%s created\n", nb.Metadata.Namespace, name)
			if !wait || stopped {
				return nil
			}
			nb, err = waitNotebook(ctx, o, n, hdr, name, timeout)
			if err != nil {
				return err
			}
			tok, _ := n.authToken()
			fmt.Fprintf(o.Out, "running: %s\n", notebookURL(o, nb, tok))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "kubeflow.org/v1 Notebook (or local form) as YAML or JSON; - for stdin")
	f.StringVar(&image, "image", "kubeflownotebookswg/jupyter-scipy:v1.8.0", "container image (recorded; the local runtime runs Jupyter from the host)")
	f.StringArrayVar(&env, "env", nil, "NAME=value environment variable (repeatable)")
	f.StringArrayVar(&args, "arg", nil, "extra argument for the Jupyter server (repeatable)")
	f.StringVar(&cpu, "cpu", "", "CPU request, e.g. 500m")
	f.StringVar(&memory, "memory", "", "memory request, e.g. 1Gi")
	f.BoolVar(&stopped, "stopped", false, "create it stopped (kubeflow-resource-stopped)")
	f.BoolVar(&wait, "wait", true, "wait until the server runs and print its URL")
	f.DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
}

func readFileOrStdin(name string) ([]byte, error) {
	if name == "-" {
		var buf bytes.Buffer
		_, err := buf.ReadFrom(os.Stdin)
		return buf.Bytes(), err
	}
	return os.ReadFile(name)
}

func waitNotebook(ctx context.Context, o *Options, n *notebookOptions, hdr http.Header, name string, timeout time.Duration) (notebooksv1.Notebook, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var nb notebooksv1.Notebook
		err := o.client().do(ctx, http.MethodGet, n.path(name), hdr, nil, &nb)
		if err == nil && len(nb.Status.Conditions) > 0 {
			c := nb.Status.Conditions[0]
			switch {
			case c.Type == notebooksv1.ConditionRunning:
				return nb, nil
			case c.Type == notebooksv1.ConditionTerminated:
				return nb, fmt.Errorf("notebook %s/%s: %s: %s", n.namespace, name, c.Reason, c.Message)
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return nb, err
			}
			return nb, fmt.Errorf("notebook %s/%s not running after %s", n.namespace, name, timeout)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func notebookURL(o *Options, nb notebooksv1.Notebook, token string) string {
	u := strings.TrimRight(o.Server, "/") + notebooksv1.PathPrefix(nb.Metadata.Namespace, nb.Metadata.Name)
	if token != "" {
		u += "?token=" + url.QueryEscape(token)
	}
	return u
}

func newNotebookListCmd(o *Options, n *notebookOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the namespace's notebooks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			hdr, err := n.header()
			if err != nil {
				return err
			}
			var list notebooksv1.NotebookList
			if err := o.client().do(cmd.Context(), http.MethodGet, n.path(""), hdr, nil, &list); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATUS\tREASON\tREADY\tURL")
			for _, nb := range list.Items {
				typ, reason := "-", ""
				if len(nb.Status.Conditions) > 0 {
					typ, reason = nb.Status.Conditions[0].Type, nb.Status.Conditions[0].Reason
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/1\t%s\n", nb.Metadata.Name, typ, reason, nb.Status.ReadyReplicas, nb.Status.URL)
			}
			return tw.Flush()
		},
	}
}

func newNotebookControlCmd(o *Options, n *notebookOptions, verb, short string) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			hdr, err := n.header()
			if err != nil {
				return err
			}
			method, p := http.MethodPost, n.path(argv[0])+":"+verb
			if verb == "delete" {
				method, p = http.MethodDelete, n.path(argv[0])
			}
			if err := o.client().do(cmd.Context(), method, p, hdr, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "notebook %s/%s: %s requested\n", n.namespace, argv[0], verb)
			return nil
		},
	}
}

func newNotebookOpenCmd(o *Options, n *notebookOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "open NAME",
		Short: "Print the notebook's URL (with a token query for the browser)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			hdr, err := n.header()
			if err != nil {
				return err
			}
			var nb notebooksv1.Notebook
			if err := o.client().do(cmd.Context(), http.MethodGet, n.path(argv[0]), hdr, nil, &nb); err != nil {
				return err
			}
			tok, _ := n.authToken()
			fmt.Fprintln(o.Out, notebookURL(o, nb, tok))
			if nb.Status.ReadyReplicas == 0 {
				fmt.Fprintf(o.Err, "note: %s/%s is not running; start it with `sluice notebook start %s -n %s`\n", n.namespace, argv[0], argv[0], n.namespace)
			}
			return nil
		},
	}
}
