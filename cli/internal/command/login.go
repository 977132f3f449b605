package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-ml/sluice/libs/auth"
	"github.com/sluice-ml/sluice/libs/platform"
)

func init() {
	extraCommands = append(extraCommands, newLoginCmd, newNamespaceCmd)
}

// credentials is what `sluice login` stores (mode 0600): one token per server.
type credentials struct {
	Tokens map[string]string `json:"tokens"`
}

// credentialsPath is $SLUICE_CONFIG, else <user config dir>/sluice/credentials.json.
func credentialsPath() string {
	if p := os.Getenv("SLUICE_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "sluice", "credentials.json")
}

func loadCredentials() credentials {
	var c credentials
	if b, err := os.ReadFile(credentialsPath()); err == nil {
		_ = json.Unmarshal(b, &c)
	}
	if c.Tokens == nil {
		c.Tokens = map[string]string{}
	}
	return c
}

func serverKey(server string) string { return strings.TrimRight(server, "/") }

// token returns the API token: --api-token, $SLUICE_TOKEN, the token `sluice login` stored for this
// server, or, for a server on loopback, the admin token of the `sluice dev` data dir ($SLUICE_DATA_DIR or
// ./.sluice). An admin token is never sent to a server off this host.
func (o *Options) token() string {
	if o.Token != "" {
		return o.Token
	}
	if t := os.Getenv("SLUICE_TOKEN"); t != "" {
		return t
	}
	if t := loadCredentials().Tokens[serverKey(o.Server)]; t != "" {
		return t
	}
	if !loopbackServer(o.Server) {
		return ""
	}
	dir := os.Getenv("SLUICE_DATA_DIR")
	if dir == "" {
		dir = ".sluice"
	}
	if b, err := os.ReadFile(auth.AdminTokenPath(dir)); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

func loopbackServer(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

func newLoginCmd(o *Options) *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "login --token TOKEN",
		Short: "Store an API token (a static token or an OIDC ID token) for --server, after checking it",
		Long: `sluice login checks the token against the server (GET /apis/auth/v1/whoami) and stores it, per server,
in $SLUICE_CONFIG or <config dir>/sluice/credentials.json (mode 0600). Later commands send it.
The token may also come on stdin ("-").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "-" {
				var b [8192]byte
				n, _ := os.Stdin.Read(b[:])
				token = strings.TrimSpace(string(b[:n]))
			}
			if token == "" {
				return usageError(errors.New("--token: required"))
			}
			c := o.client()
			c.token = token
			var id auth.Identity
			if err := c.do(cmd.Context(), "GET", "/apis/auth/v1/whoami", nil, nil, &id); err != nil {
				return fmt.Errorf("login: %w", err)
			}
			creds := loadCredentials()
			creds.Tokens[serverKey(o.Server)] = token
			b, _ := json.MarshalIndent(creds, "", "  ")
			p := credentialsPath()
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "logged in to %s as %s\n", o.Server, id.Subject)
			return nil
		},
	}
	cmd.Flags().StringVar(&token, "token", "", "the token (\"-\" reads stdin)")
	return cmd
}

func newNamespaceCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{Use: "namespace", Aliases: []string{"namespaces", "ns"}, Short: "Namespaces (Kubeflow profiles): owner, contributors, viewers"}
	var owner string
	create := &cobra.Command{
		Use: "create NAME", Short: "Create a namespace owned by you (an admin may give --owner)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out platform.NamespaceEntry
			body := map[string]string{"name": args[0]}
			if owner != "" {
				body["owner"] = owner
			}
			if err := o.client().do(cmd.Context(), "POST", "/apis/auth/v1/namespaces", nil, body, &out); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "namespace %s created, owner %s\n", out.Name, out.Owner)
			return nil
		},
	}
	create.Flags().StringVar(&owner, "owner", "", "owner of the namespace (admins only; default: you)")
	list := &cobra.Command{
		Use: "list", Short: "List the namespaces you are a member of", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return listNamespaces(cmd.Context(), o) },
	}
	var role string
	add := &cobra.Command{
		Use: "add-member NAMESPACE USER", Short: "Give USER a role in NAMESPACE (owner only): contributor, viewer, owner or none", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := auth.ParseRole(role); err != nil && role != "none" {
				return usageError(fmt.Errorf("--role: %w", err))
			}
			var out platform.NamespaceEntry
			if err := o.client().do(cmd.Context(), "POST", "/apis/auth/v1/namespaces/"+url.PathEscape(args[0])+"/members", nil,
				map[string]string{"user": args[1], "role": role}, &out); err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "%s is %s of %s\n", args[1], role, out.Name)
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "contributor", "contributor (edit), viewer (read), owner, or none to remove")
	cmd.AddCommand(create, list, add)
	return cmd
}

func listNamespaces(ctx context.Context, o *Options) error {
	var out platform.NamespaceList
	if err := o.client().do(ctx, "GET", "/apis/auth/v1/namespaces", nil, nil, &out); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tOWNER\tCONTRIBUTORS\tVIEWERS\tYOUR ROLE")
	for _, n := range out.Namespaces {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Owner, strings.Join(n.Contributors, ","), strings.Join(n.Viewers, ","), n.Role)
	}
	return tw.Flush()
}
