package command

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/libs/events"
)

func newEventsCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Publish and follow Sluice CloudEvents"}
	cmd.AddCommand(newEventsPublishCmd(o), newEventsTailCmd(o))
	return cmd
}

func newEventsPublishCmd(o *Options) *cobra.Command {
	var typ, source, data, id, subject string
	cmd := &cobra.Command{
		Use:   "publish --type T --source S --data @file.json [--id ID]",
		Short: "Publish one CloudEvent (binary mode over HTTP to the API, stored in JetStream)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := events.ValidateType(typ); err != nil {
				return usageError(fmt.Errorf("--type: %w", err))
			}
			body := []byte(data)
			if strings.HasPrefix(data, "@") {
				b, err := os.ReadFile(strings.TrimPrefix(data, "@"))
				if err != nil {
					return usageError(fmt.Errorf("--data: %w", err))
				}
				body = b
			}
			if len(body) > 0 && !json.Valid(body) {
				return usageError(fmt.Errorf("--data: not valid JSON"))
			}
			if id == "" {
				u, err := uuid.NewV7()
				if err != nil {
					return err
				}
				id = u.String()
			}
			h := http.Header{}
			h.Set("ce-specversion", "1.0")
			h.Set("ce-id", id)
			h.Set("ce-type", typ)
			h.Set("ce-source", source)
			if subject != "" {
				h.Set("ce-subject", subject)
			}
			h.Set("Content-Type", "application/json")
			var out map[string]string
			if err := o.client().do(cmd.Context(), http.MethodPost, events.PublishPath, h, strings.NewReader(string(body)), &out); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "published %s on %s\n", out["id"], out["subject"])
			return nil
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "event type, e.g. "+events.PipelineRunRequestedV1)
	cmd.Flags().StringVar(&source, "source", "/sluice/cli", "event source")
	cmd.Flags().StringVar(&data, "data", "", "JSON data, or @file.json")
	cmd.Flags().StringVar(&id, "id", "", "event id (default: a new UUIDv7); re-publishing an id is deduplicated")
	cmd.Flags().StringVar(&subject, "subject", "", "CloudEvents subject (entity path, e.g. runs/<id>)")
	_ = cmd.MarkFlagRequired("type")
	return cmd
}

func newEventsTailCmd(o *Options) *cobra.Command {
	var typ string
	var all bool
	cmd := &cobra.Command{
		Use:   "tail [--type glob] [--all]",
		Short: "Follow events as JSON lines; --all replays what the streams hold first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			q := url.Values{}
			if typ != "" {
				q.Set("type", typ)
			}
			if all {
				q.Set("all", "true")
			}
			body, err := o.client().stream(ctx, events.TailPath+"?"+q.Encode())
			if err != nil {
				return err
			}
			defer body.Close()
			sc := bufio.NewScanner(body)
			sc.Buffer(make([]byte, 1<<20), 16<<20)
			for sc.Scan() {
				fmt.Fprintln(o.Out, sc.Text())
			}
			if ctx.Err() != nil {
				return nil
			}
			return sc.Err()
		},
	}
	cmd.Flags().StringVar(&typ, "type", "", "type glob, e.g. 'io.sluice.pipeline.*'")
	cmd.Flags().BoolVar(&all, "all", false, "replay stored events first")
	return cmd
}
