package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Images under test: the same variables the Makefile and docker-compose.yml use, defaulting to what
// `make images` builds here (INFRA=local).
var (
	natsImage       = envOr("NATS_IMAGE", "sluice-local/nats:2.12")
	temporalImage   = envOr("TEMPORAL_IMAGE", "sluice-local/temporal:1.30.4")
	s3Image         = envOr("S3_IMAGE", "sluice-local/versitygw:1.8.0")
	postgresImage   = envOr("POSTGRES_IMAGE", "sluice-local/postgres:15")
	servicePrefix   = envOr("SLUICE_IMAGE_PREFIX", "sluice/")
	serviceTag      = envOr("SLUICE_IMAGE_TAG", "dev")
	startupDeadline = 5 * time.Minute
)

const (
	s3Access  = "sluice-it"
	s3Secret  = "sluice-it-secret-key"
	s3Bucket  = "sluice"
	namespace = "sluice"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func serviceImage(name string) string { return servicePrefix + name + ":" + serviceTag }

// stack is one deployment on its own Docker network: infrastructure containers, one container per
// service, and the texts server on the host that steps download from. Every Docker object it creates
// is named with prefix and removed by close.
type stack struct {
	prefix   string
	net      *testcontainers.DockerNetwork
	gateway  string // the network's gateway address: the host as containers see it
	texts    *http.Server
	textsURL string

	mu         sync.Mutex
	containers map[string]*testcontainers.DockerContainer
	volumes    []string
}

var st *stack

func TestMain(m *testing.M) {
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true") // the reaper image cannot be pulled here; close cleans up
	// With Docker on the local socket, published ports are on this host. testcontainers otherwise guesses
	// the host from the default route when it believes it runs in a container (here: a TEST-NET address).
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" && (os.Getenv("DOCKER_HOST") == "" || strings.HasPrefix(os.Getenv("DOCKER_HOST"), "unix://")) {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if reason := unavailable(); reason != "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "integration: "+reason)
			return 1
		}
		fmt.Fprintln(os.Stderr, "integration: skipped: "+reason)
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*startupDeadline)
	s, err := startStack(ctx)
	cancel()
	if s != nil {
		defer s.close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: start stack:", err)
		return 1
	}
	st = s
	return m.Run()
}

// unavailable says why the suite cannot run (no Docker, images not built), or "".
func unavailable() string {
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Sprintf("docker is not available: %v: %s", err, out)
	}
	var missing []string
	for _, img := range []string{natsImage, temporalImage, s3Image, postgresImage, serviceImage("pipelines"), serviceImage("metadata"),
		serviceImage("serving"), serviceImage("training"), serviceImage("notebooks")} {
		if err := exec.Command("docker", "image", "inspect", img).Run(); err != nil {
			missing = append(missing, img)
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("images %s are missing: run `make images`", strings.Join(missing, ", "))
	}
	return ""
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func docker(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func startStack(ctx context.Context) (*stack, error) {
	s := &stack{prefix: "deploy-it-" + randomSuffix(), containers: map[string]*testcontainers.DockerContainer{}}
	nw, err := network.New(ctx, network.WithLabels(map[string]string{"sluice.test": s.prefix}))
	if err != nil {
		return s, fmt.Errorf("network: %w", err)
	}
	s.net = nw
	if s.gateway, err = docker("network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", nw.ID); err != nil {
		return s, err
	}
	if err := s.serveTexts(); err != nil {
		return s, err
	}
	errc := make(chan error, 4)
	go func() { errc <- s.startPostgres(ctx, "temporal-postgresql", "temporal", "temporal", "") }()
	go func() { errc <- s.startPostgres(ctx, "metadata-postgresql", "metadata", "metadata", "metadata") }()
	go func() { errc <- s.startNATS(ctx) }()
	go func() { errc <- s.startS3(ctx) }()
	var errs []error
	for range 4 {
		errs = append(errs, <-errc)
	}
	if err := errors.Join(errs...); err != nil {
		return s, err
	}
	if err := s.startTemporal(ctx); err != nil {
		return s, err
	}
	for _, svc := range []string{"pipelines", "metadata", "training", "serving", "notebooks"} {
		go func() { errc <- s.startService(ctx, svc, svc, nil) }()
	}
	errs = nil
	for range 5 {
		errs = append(errs, <-errc)
	}
	return s, errors.Join(errs...)
}

// serveTexts serves examples/pipelines/texts on the host, on the network's gateway address (how the
// pipeline's download steps in containers reach it), on a free port.
func (s *stack) serveTexts() error {
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples", "pipelines", "texts"))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.gateway, "0"))
	if err != nil {
		return fmt.Errorf("serve texts on the network gateway %s: %w", s.gateway, err)
	}
	s.texts = &http.Server{Handler: http.StripPrefix("/texts/", http.FileServer(http.Dir(dir))), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.texts.Serve(ln) }()
	s.textsURL = "http://" + ln.Addr().String() + "/texts"
	return nil
}

func (s *stack) name(alias string) string { return s.prefix + "-" + alias }

func (s *stack) run(ctx context.Context, alias, image string, opts ...testcontainers.ContainerCustomizer) error {
	opts = append([]testcontainers.ContainerCustomizer{
		testcontainers.WithName(s.name(alias)),
		network.WithNetwork([]string{alias}, s.net),
		testcontainers.WithLabels(map[string]string{"sluice.test": s.prefix}),
	}, opts...)
	c, err := testcontainers.Run(ctx, image, opts...)
	if c != nil {
		s.mu.Lock()
		s.containers[alias] = c
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("%s (%s): %w%s", alias, image, err, s.logsOf(alias))
	}
	return nil
}

func (s *stack) startPostgres(ctx context.Context, alias, user, password, db string) error {
	env := map[string]string{"POSTGRES_USER": user, "POSTGRES_PASSWORD": password}
	if db != "" {
		env["POSTGRES_DB"] = db
	}
	return s.run(ctx, alias, postgresImage, testcontainers.WithEnv(env), testcontainers.WithExposedPorts("5432/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(startupDeadline, wait.ForExec([]string{"pg_isready", "-h", "127.0.0.1", "-U", user}).
			WithStartupTimeout(startupDeadline).WithPollInterval(500*time.Millisecond)))
}

// startNATS runs NATS with JetStream on a named volume, so that a stop and start keeps the streams.
func (s *stack) startNATS(ctx context.Context) error {
	vol := s.name("nats-data")
	s.mu.Lock()
	s.volumes = append(s.volumes, vol)
	s.mu.Unlock()
	// The compose deployment's configuration: one NATS user per service and the event gateway's, with
	// per-subject permissions (rendered from libs/events/natsusers.go), passwords from the environment.
	env := map[string]string{}
	for user, pw := range natsPasswords {
		env["NATS_"+strings.ToUpper(user)+"_PASSWORD"] = pw
	}
	return s.run(ctx, "nats", natsImage,
		testcontainers.WithCmd("--jetstream", "--store_dir", "/data", "--http_port", "8222", "--config", "/nats.conf"),
		testcontainers.WithFiles(testcontainers.ContainerFile{HostFilePath: "../../deploy/nats/nats.conf", ContainerFilePath: "/nats.conf", FileMode: 0o644}),
		testcontainers.WithEnv(env),
		testcontainers.WithMounts(testcontainers.VolumeMount(vol, "/data")),
		testcontainers.WithExposedPorts("4222/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(startupDeadline, wait.ForLog("Server is ready").WithStartupTimeout(startupDeadline)))
}

func (s *stack) startS3(ctx context.Context) error {
	return s.run(ctx, "s3", s3Image,
		testcontainers.WithEnv(map[string]string{"ROOT_ACCESS_KEY": s3Access, "ROOT_SECRET_KEY": s3Secret}),
		testcontainers.WithExposedPorts("9000/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(startupDeadline, wait.ForLog("Admin/S3 service listening on").WithStartupTimeout(startupDeadline)))
}

func (s *stack) startTemporal(ctx context.Context) error {
	return s.run(ctx, "temporal", temporalImage,
		testcontainers.WithEnv(map[string]string{
			"DB": "postgres12", "DB_PORT": "5432", "POSTGRES_USER": "temporal", "POSTGRES_PWD": "temporal",
			"POSTGRES_SEEDS": "temporal-postgresql", "DEFAULT_NAMESPACE": namespace, "NUM_HISTORY_SHARDS": "2",
		}),
		testcontainers.WithExposedPorts("7233/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(startupDeadline, wait.ForExec([]string{"/temporal-server", "healthcheck"}).
			WithStartupTimeout(startupDeadline).WithPollInterval(time.Second)))
}

// authKey and adminToken are this run's identity-header key and admin token (README "Trust model").
var authKey, adminToken = randomToken(), randomToken()

// natsPasswords are this run's NATS passwords, per user of deploy/nats/nats.conf.
var natsPasswords = func() map[string]string {
	pw := map[string]string{}
	for _, u := range []string{"pipelines", "training", "serving", "notebooks", "metadata", "tuning", "dashboard", "gateway"} {
		pw[u] = randomToken()
	}
	return pw
}()

// natsURL is the NATS URL of user inside the stack's network.
func natsURL(user string) string { return "nats://" + user + ":" + natsPasswords[user] + "@nats:4222" }

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// authorized adds the admin token to req and sends it.
func authorized(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+adminToken)
	return http.DefaultClient.Do(req)
}

// serviceEnv is the whole configuration of a service container: the documented variables only.
func serviceEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		"SLUICE_HTTP_ADDR": "0.0.0.0:8080", "SLUICE_DATA_DIR": "/data", "SLUICE_LOG_LEVEL": "info",
		"NATS_URL": "nats://nats:4222", "TEMPORAL_ADDRESS": "temporal:7233", "TEMPORAL_NAMESPACE": namespace,
		"S3_ENDPOINT": "http://s3:9000", "S3_ACCESS_KEY": s3Access, "S3_SECRET_KEY": s3Secret, "S3_BUCKET": s3Bucket,
		"S3_REGION": "us-east-1", "SLUICE_RUNTIME": "local",
		// Every API needs a credential; the services share the identity-header key.
		"SLUICE_AUTH_KEY": authKey, "SLUICE_AUTH_TOKENS": adminToken + "=system:admin",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// startService runs the image of service as container alias (several aliases may run one service).
func (s *stack) startService(ctx context.Context, alias, service string, extra map[string]string) error {
	env := map[string]string{"NATS_URL": natsURL(service)}
	switch service {
	case "metadata":
		env["METADATA_DATABASE_URL"] = "postgres://metadata:metadata@metadata-postgresql:5432/metadata?sslmode=disable"
	case "pipelines":
		env["SLUICE_PIPELINES_TRAINING_URL"] = "http://training:8080"
		env["SLUICE_EVENTS_NATS_URL"] = natsURL("gateway")
	case "notebooks":
		env["SLUICE_NOTEBOOKS_TOKENS"] = "integration-token-0123456789=*"
	}
	for k, v := range extra {
		env[k] = v
	}
	return s.run(ctx, alias, serviceImage(service),
		testcontainers.WithEnv(serviceEnv(env)),
		testcontainers.WithExposedPorts("8080/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(startupDeadline, readyz()))
}

func readyz() wait.Strategy {
	// The service's own health check (GET /readyz inside the container), as compose runs it.
	return wait.ForExec([]string{"/sluice-service", "healthcheck"}).WithStartupTimeout(startupDeadline).WithPollInterval(500 * time.Millisecond)
}

func (s *stack) container(alias string) *testcontainers.DockerContainer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.containers[alias]
}

// endpoint is host:port on the host for the container's port (it changes when a container restarts).
func (s *stack) endpoint(t testing.TB, alias, port string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.container(alias)
	host, err := c.Host(ctx)
	if err != nil {
		t.Fatalf("%s: host: %v", alias, err)
	}
	// Docker's IPv6 port proxy can accept and then reset connections (moby/moby#42442): use IPv4.
	if host == "localhost" {
		host = "127.0.0.1"
	}
	p, err := c.MappedPort(ctx, port)
	if err != nil {
		t.Fatalf("%s: mapped port %s: %v", alias, port, err)
	}
	return net.JoinHostPort(host, p.Port())
}

func (s *stack) url(t testing.TB, alias string) string {
	return "http://" + s.endpoint(t, alias, "8080/tcp")
}

// stop stops a container gracefully (SIGTERM, then SIGKILL after 10 s).
func (s *stack) stop(t testing.TB, alias string) {
	t.Helper()
	timeout := 10 * time.Second
	if err := s.container(alias).Stop(context.Background(), &timeout); err != nil {
		t.Fatalf("stop %s: %v", alias, err)
	}
}

// kill sends SIGKILL to a container's main process.
func (s *stack) kill(t testing.TB, alias string) {
	t.Helper()
	if _, err := docker("kill", "--signal", "KILL", s.name(alias)); err != nil {
		t.Fatal(err)
	}
	// Wait until Docker reports it stopped, so that Start starts it again.
	waitFor(t, time.Minute, "container "+alias+" to stop", func() (bool, string) {
		out, err := docker("inspect", "-f", "{{.State.Running}}", s.name(alias))
		return err == nil && out == "false", out
	})
}

// start starts a stopped container again and waits for its wait strategy (readiness).
func (s *stack) start(t testing.TB, alias string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startupDeadline)
	defer cancel()
	if err := s.container(alias).Start(ctx); err != nil {
		t.Fatalf("start %s: %v%s", alias, err, s.logsOf(alias))
	}
}

func (s *stack) logsOf(alias string) string {
	out, err := exec.Command("docker", "logs", "--tail", "40", s.name(alias)).CombinedOutput()
	if err != nil {
		return ""
	}
	return "\n--- last log lines of " + alias + " ---\n" + string(out)
}

func (s *stack) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if s.texts != nil {
		_ = s.texts.Close()
	}
	s.mu.Lock()
	cs := s.containers
	s.containers = map[string]*testcontainers.DockerContainer{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for alias, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Terminate(ctx); err != nil {
				fmt.Fprintf(os.Stderr, "integration: remove %s: %v\n", alias, err)
			}
		}()
	}
	wg.Wait()
	if s.net != nil {
		if err := s.net.Remove(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "integration: remove network:", err)
		}
	}
	for _, v := range s.volumes {
		if _, err := docker("volume", "rm", "-f", v); err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
		}
	}
}

// waitFor polls cond until it holds or the deadline passes (then fails with the last detail).
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last: %s", d, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// getJSON GETs url into v; it returns the status code (0 on a transport error).
func getJSON(url string, v any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := authorized(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: decode: %w", url, err)
		}
	}
	return resp.StatusCode, nil
}

// remove terminates a container the stack started and forgets it.
func (s *stack) remove(alias string) {
	s.mu.Lock()
	c := s.containers[alias]
	delete(s.containers, alias)
	s.mu.Unlock()
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Terminate(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "integration: remove %s: %v\n", alias, err)
	}
}
