package command

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/spf13/cobra"

	pipelinesapp "github.com/sluice-ml/sluice/services/pipelines/app"
)

func init() {
	extraCommands = append(extraCommands,
		func(o *Options) *cobra.Command { return newObjectCmd(o, "secret") },
		func(o *Options) *cobra.Command { return newObjectCmd(o, "configmap") })
}

func objectsPath(ns, kind, name string) string {
	p := "/apis/v1/namespaces/" + url.PathEscape(ns) + "/" + kind + "s"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// newObjectCmd: `sluice secret` and `sluice configmap`, the namespace's secrets and config maps that
// kfp-kubernetes use_secret_as_env/_as_volume and use_config_map_as_env/_as_volume read (docker runtime).
func newObjectCmd(o *Options, kind string) *cobra.Command {
	title := map[string]string{"secret": "secrets", "configmap": "config maps"}[kind]
	var ns string
	cmd := &cobra.Command{
		Use:     kind,
		Aliases: []string{kind + "s"},
		Short:   fmt.Sprintf("Create, list, get and delete the namespace's %s (read by kfp-kubernetes settings of pipeline steps)", title),
		Long: fmt.Sprintf(`The namespace's %s, shaped as Kubernetes core/v1 objects, are what a KFP pipeline's
kfp-kubernetes settings (use_secret_as_env, use_secret_as_volume, use_config_map_as_env,
use_config_map_as_volume) read when its steps run with --runtime docker. Values are given with
--from-literal KEY=VALUE or --from-file KEY=PATH (or just PATH: the key is the file's name).`, title),
	}
	cmd.PersistentFlags().StringVarP(&ns, "namespace", "n", "default", "namespace")
	var literals, files []string
	create := &cobra.Command{
		Use:     "create NAME [--from-literal KEY=VALUE]... [--from-file [KEY=]PATH]...",
		Short:   "Create a " + strings.TrimSuffix(title, "s") + " from literal values and files",
		Example: fmt.Sprintf(`  sluice %s create db-creds -n team-a --from-literal user=alice --from-file password=./pw.txt`, kind),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			data := map[string][]byte{}
			for _, l := range literals {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return usageError(fmt.Errorf("--from-literal %q: want KEY=VALUE", l))
				}
				data[k] = []byte(v)
			}
			for _, f := range files {
				k, p, ok := strings.Cut(f, "=")
				if !ok {
					k, p = f[strings.LastIndex(f, "/")+1:], f
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return usageError(fmt.Errorf("--from-file %s: %w", f, err))
				}
				data[k] = b
			}
			if len(data) == 0 {
				return usageError(errors.New("give at least one --from-literal or --from-file"))
			}
			body := pipelinesapp.ObjectBody{APIVersion: "v1", Metadata: pipelinesapp.ObjectMeta{Name: argv[0], Namespace: ns}}
			for k, v := range data {
				switch {
				case kind == "secret":
					put2(&body.Data, k, base64.StdEncoding.EncodeToString(v))
				case utf8.Valid(v):
					put2(&body.Data, k, string(v))
				default:
					put2(&body.BinaryData, k, base64.StdEncoding.EncodeToString(v))
				}
			}
			if err := o.client().do(cmd.Context(), http.MethodPost, objectsPath(ns, kind, ""), nil, body, nil); err != nil {
				return err
			}
			keys := make([]string, 0, len(data))
			for k := range data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintf(o.Out, "%s %s/%s created (keys: %s)\n", kind, ns, argv[0], strings.Join(keys, ", "))
			return nil
		},
	}
	create.Flags().StringArrayVar(&literals, "from-literal", nil, "KEY=VALUE (repeatable)")
	create.Flags().StringArrayVar(&files, "from-file", nil, "[KEY=]PATH: the file's content under KEY (default the file's name; repeatable)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the namespace's " + title + " (names and keys" + map[string]string{"secret": ", never values", "configmap": ""}[kind] + ")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var l pipelinesapp.ObjectList
			if err := o.client().do(cmd.Context(), http.MethodGet, objectsPath(ns, kind, ""), nil, nil, &l); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tKEYS\tCREATED")
			for _, it := range l.Items {
				keys := it.Keys
				if keys == nil {
					for k := range it.Data {
						keys = append(keys, k)
					}
					for k := range it.BinaryData {
						keys = append(keys, k)
					}
					sort.Strings(keys)
				}
				created := ""
				if it.Metadata.CreationTimestamp != nil {
					created = it.Metadata.CreationTimestamp.Format("2006-01-02 15:04:05Z07:00")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Metadata.Name, strings.Join(keys, ","), created)
			}
			return tw.Flush()
		},
	}
	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a " + strings.TrimSuffix(title, "s") + " as JSON (a secret's data base64, as kubectl shows it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return o.client().do(cmd.Context(), http.MethodGet, objectsPath(ns, kind, argv[0]), nil, nil, o.Out)
		},
	}
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a " + strings.TrimSuffix(title, "s"),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := o.client().do(cmd.Context(), http.MethodDelete, objectsPath(ns, kind, argv[0]), nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "%s %s/%s deleted\n", kind, ns, argv[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, get, del)
	return cmd
}

func put2(m *map[string]string, k, v string) {
	if *m == nil {
		*m = map[string]string{}
	}
	(*m)[k] = v
}
