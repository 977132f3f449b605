package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/sluice-ml/sluice/services/serving/api/servingv1"
	servingapp "github.com/sluice-ml/sluice/services/serving/app"
)

func init() {
	devServices = append(devServices, servingapp.Build)
	extraCommands = append(extraCommands, newServeCmd)
}

type serveOpts struct {
	o         *Options
	namespace string
}

func (s *serveOpts) path(name string, rest ...string) string {
	p := "/apis/serving/v1/namespaces/" + url.PathEscape(s.namespace) + "/deployments"
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p + strings.Join(rest, "")
}

func newServeCmd(o *Options) *cobra.Command {
	s := &serveOpts{o: o}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Deploy models and call them (TF Serving REST and KServe v2 protocols, canary rollouts)",
		Long: `A deployment serves one model name from a model base path (integer version directories holding
model.onnx, as TensorFlow Serving lays them out). Deploy a KServe InferenceService (serving.kserve.io/v1beta1)
or TF Serving flags; new versions under the base path roll out automatically, at canaryTrafficPercent
when it is set, until promoted.`,
	}
	cmd.PersistentFlags().StringVarP(&s.namespace, "namespace", "n", "default", "namespace of the deployment")
	cmd.AddCommand(s.deployCmd(), s.getCmd(), s.listCmd(), s.deleteCmd(), s.promoteCmd(), s.predictCmd())
	return cmd
}

func (s *serveOpts) deployCmd() *cobra.Command {
	var file, name, base, policy string
	var labels []string
	var canary int
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "deploy (-f isvc.yaml | --name MODEL --model-base-path s3://bucket/prefix)",
		Short: "Create or update a deployment",
		Example: `  sluice serve deploy -f isvc.yaml
  sluice serve deploy --name mnist --model-base-path s3://sluice/mnist/export --canary 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var doc []byte
			switch {
			case file != "" && (name != "" || base != ""):
				return usageError(errors.New("give either -f or --name/--model-base-path"))
			case file != "":
				b, err := os.ReadFile(file)
				if err != nil {
					return usageError(err)
				}
				doc = b
				// Like kubectl apply: the document's metadata.namespace wins unless -n is given.
				var meta struct {
					Metadata struct {
						Namespace string `json:"namespace"`
					} `json:"metadata"`
				}
				if yaml.Unmarshal(b, &meta) == nil && meta.Metadata.Namespace != "" && !cmd.Flags().Changed("namespace") {
					s.namespace = meta.Metadata.Namespace
				}
			case name != "" && base != "":
				flags := []string{"--model_name=" + name, "--model_base_path=" + base}
				if policy != "" {
					flags = append(flags, "--model_version_policy="+policy)
				}
				for _, l := range labels {
					flags = append(flags, "--version_label="+l)
				}
				if cmd.Flags().Changed("canary") {
					flags = append(flags, fmt.Sprintf("--canary_traffic_percent=%d", canary))
				}
				b, err := json.Marshal(map[string]any{"namespace": s.namespace, "args": flags})
				if err != nil {
					return err
				}
				doc = b
			default:
				return usageError(errors.New("need -f FILE, or --name and --model-base-path"))
			}
			var acc servingv1.DeploymentAccepted
			hdr := http.Header{"Content-Type": []string{"application/yaml"}}
			if err := s.o.client().do(cmd.Context(), http.MethodPost, s.path(""), hdr, bytes.NewReader(doc), &acc); err != nil {
				return err
			}
			verb := "updated"
			if acc.Created {
				verb = "created"
			}
			fmt.Fprintf(s.o.Out, "deployment %s/%s %s (model %s)\n", acc.Namespace, acc.Name, verb, acc.ModelName)
			if wait <= 0 {
				return nil
			}
			return s.waitReady(cmd.Context(), acc.Namespace, acc.Name, wait)
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "InferenceService or tf-serving document (YAML or JSON)")
	cmd.Flags().StringVar(&name, "name", "", "model name (TF Serving --model_name)")
	cmd.Flags().StringVar(&base, "model-base-path", "", "model base path, s3://bucket/prefix (TF Serving --model_base_path)")
	cmd.Flags().StringVar(&policy, "model-version-policy", "", "latest[:N] | all | specific:V1,V2")
	cmd.Flags().StringArrayVar(&labels, "version-label", nil, "version label name=version (repeatable)")
	cmd.Flags().IntVar(&canary, "canary", 0, "canaryTrafficPercent for new versions (0..100)")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait until the deployment is Ready (e.g. 60s)")
	return cmd
}

func (s *serveOpts) waitReady(ctx context.Context, ns, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var v servingv1.DeploymentView
		err := s.o.client().do(ctx, http.MethodGet, s.path(name), nil, nil, &v)
		if err == nil && v.Ready {
			fmt.Fprintf(s.o.Out, "deployment %s/%s ready: %s\n", ns, name, trafficString(v))
			return nil
		}
		if err == nil && v.Status.ModelStatus.States.ActiveModelState == servingv1.ModelStateFailedToLoad {
			if c := v.Condition(servingv1.ConditionReady); c != nil {
				return fmt.Errorf("deployment %s/%s failed: %s: %s", ns, name, c.Reason, c.Message)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deployment %s/%s not ready after %s", ns, name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func trafficString(v servingv1.DeploymentView) string {
	var parts []string
	for _, t := range v.Status.Components.Predictor.Traffic {
		parts = append(parts, fmt.Sprintf("v%d %d%% (%s)", t.Version, t.Percent, t.Tag))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

func (s *serveOpts) getCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a deployment's status, revisions and traffic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var v servingv1.DeploymentView
			if err := s.o.client().do(cmd.Context(), http.MethodGet, s.path(args[0]), nil, nil, &v); err != nil {
				return err
			}
			if output == "json" {
				b, _ := json.MarshalIndent(v, "", "  ")
				fmt.Fprintln(s.o.Out, string(b))
				return nil
			}
			tw := tabwriter.NewWriter(s.o.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "name:\t%s/%s\n", v.Namespace, v.Name)
			fmt.Fprintf(tw, "model:\t%s (%s)\n", v.Spec.ModelName, v.Status.URL)
			fmt.Fprintf(tw, "storageUri:\t%s\n", v.Spec.StorageURI)
			fmt.Fprintf(tw, "ready:\t%v\n", v.Ready)
			fmt.Fprintf(tw, "model status:\t%s, active %s\n", v.Status.ModelStatus.TransitionStatus, v.Status.ModelStatus.States.ActiveModelState)
			if f := v.Status.ModelStatus.LastFailureInfo; f != nil {
				fmt.Fprintf(tw, "last failure:\t%s: %s\n", f.Reason, f.Message)
			}
			fmt.Fprintf(tw, "traffic:\t%s\n", trafficString(v))
			for _, c := range v.Status.Conditions {
				fmt.Fprintf(tw, "condition %s:\t%s %s %s\n", c.Type, c.Status, c.Reason, c.Message)
			}
			for _, r := range v.Status.Revisions {
				fmt.Fprintf(tw, "revision %s:\tversion %d %s %s\n", r.Name, r.Version, r.ModelURI, r.Digest)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for the full status")
	return cmd
}

func (s *serveOpts) listCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the namespace's deployments",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var l servingv1.DeploymentList
			if err := s.o.client().do(cmd.Context(), http.MethodGet, s.path(""), nil, nil, &l); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(s.o.Out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tMODEL\tREADY\tSTATUS\tTRAFFIC\tSTORAGE URI")
			for _, v := range l.Deployments {
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", v.Name, v.Spec.ModelName, v.Ready, v.Status.ModelStatus.TransitionStatus, trafficString(v), v.Spec.StorageURI)
			}
			return tw.Flush()
		},
	}
}

func (s *serveOpts) deleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Unload a deployment's model and delete it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := s.o.client().do(cmd.Context(), http.MethodDelete, s.path(args[0]), nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(s.o.Out, "deployment %s/%s deleted\n", s.namespace, args[0])
			return nil
		},
	}
}

func (s *serveOpts) promoteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "promote NAME",
		Short: "Move all traffic to the latest revision (end a canary rollout)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := s.o.client().do(cmd.Context(), http.MethodPost, s.path(args[0], "/promote"), nil, nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(s.o.Out, "deployment %s/%s promoted\n", s.namespace, args[0])
			return nil
		},
	}
}

func (s *serveOpts) predictCmd() *cobra.Command {
	var instances, file, protocol string
	var version int64
	cmd := &cobra.Command{
		Use:   "predict MODEL (--instances JSON | -f request.json) [--protocol v1|v2]",
		Short: "Call a model: TF Serving :predict (v1) or KServe v2 /infer",
		Example: `  sluice serve predict mnist --instances '[[0.0, 0.1, ...]]'
  sluice serve predict mnist -f request.json --protocol v2`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			model := args[0]
			if (instances == "") == (file == "") {
				return usageError(errors.New("give exactly one of --instances or -f"))
			}
			var body []byte
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return usageError(err)
				}
				body = b
			}
			var path string
			switch protocol {
			case "v1":
				path = "/v1/models/" + url.PathEscape(model)
				if version > 0 {
					path += fmt.Sprintf("/versions/%d", version)
				}
				path += ":predict"
				if body == nil {
					var rows json.RawMessage
					if err := json.Unmarshal([]byte(instances), &rows); err != nil {
						return usageError(fmt.Errorf("--instances: %w", err))
					}
					body, _ = json.Marshal(map[string]any{"instances": rows})
				}
			case "v2":
				path = "/v2/models/" + url.PathEscape(model)
				if version > 0 {
					path += fmt.Sprintf("/versions/%d", version)
				}
				if body == nil {
					b, err := s.v2Request(cmd.Context(), path, instances)
					if err != nil {
						return err
					}
					body = b
				}
				path += "/infer"
			default:
				return usageError(fmt.Errorf("--protocol: want v1 or v2, got %q", protocol))
			}
			var out bytes.Buffer
			if err := s.o.client().do(cmd.Context(), http.MethodPost, path, nil, bytes.NewReader(body), &out); err != nil {
				return err
			}
			fmt.Fprintln(s.o.Out, strings.TrimSpace(out.String()))
			return nil
		},
	}
	cmd.Flags().StringVar(&instances, "instances", "", "row-format instances as JSON, e.g. '[[1,2],[3,4]]'")
	cmd.Flags().StringVarP(&file, "filename", "f", "", "request body file (the protocol's JSON)")
	cmd.Flags().StringVar(&protocol, "protocol", "v1", "v1 (TF Serving REST) or v2 (KServe Open Inference Protocol)")
	cmd.Flags().Int64Var(&version, "version", 0, "model version (default: the traffic split)")
	return cmd
}

// v2Request turns row instances into a v2 infer request for the model's first input (name and
// datatype from the model metadata; shape from the rows).
func (s *serveOpts) v2Request(ctx context.Context, modelPath, instances string) ([]byte, error) {
	var rows []any
	if err := json.Unmarshal([]byte(instances), &rows); err != nil {
		return nil, usageError(fmt.Errorf("--instances: want a JSON list of rows: %w", err))
	}
	var meta struct {
		Inputs []struct {
			Name     string `json:"name"`
			Datatype string `json:"datatype"`
		} `json:"inputs"`
	}
	if err := s.o.client().do(ctx, http.MethodGet, modelPath, nil, nil, &meta); err != nil {
		return nil, err
	}
	if len(meta.Inputs) == 0 {
		return nil, errors.New("model metadata lists no inputs")
	}
	shape := []int{len(rows)}
	var flat []any
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		l, ok := v.([]any)
		if !ok {
			flat = append(flat, v)
			return nil
		}
		if len(shape) <= depth {
			shape = append(shape, len(l))
		} else if shape[depth] != len(l) {
			return usageError(fmt.Errorf("--instances: ragged rows (dimension %d has lengths %d and %d)", depth, shape[depth], len(l)))
		}
		for _, x := range l {
			if err := walk(x, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range rows {
		if err := walk(r, 1); err != nil {
			return nil, err
		}
	}
	return json.Marshal(map[string]any{"inputs": []map[string]any{{
		"name": meta.Inputs[0].Name, "datatype": meta.Inputs[0].Datatype, "shape": shape, "data": flat,
	}}})
}
