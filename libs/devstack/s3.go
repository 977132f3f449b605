package devstack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"

	"github.com/sluice-ml/sluice/libs/netport"
)

// Development defaults for the embedded S3 gateway. The credentials are fixed
// so that `sluice dev` prints the same values on every start; the gateway only
// listens on loopback.
const (
	DefaultS3AccessKey = "sluice"
	DefaultS3SecretKey = "sluice-secret-key"
	DefaultS3Region    = "us-east-1"
)

const (
	// roleEnv selects what a re-executed child of this binary runs (see
	// RunChild). Its only value today is roleS3.
	roleEnv = "SLUICE_DEVSTACK_ROLE"
	roleS3  = "s3"

	// s3HealthPath is served unauthenticated by the gateway (GET -> 200) and
	// used to detect readiness. A bucket named "healthz" is therefore hidden.
	s3HealthPath = "/healthz"

	s3ReadyTimeout  = 15 * time.Second // start-up bound when ctx has no deadline
	s3StopTimeout   = 10 * time.Second // graceful stop before the child is killed
	s3ShutdownGrace = time.Second      // child: in-flight requests get this long after stop
	s3StartTries    = 3                // attempts when the port is picked at random
	s3TailLines     = 20               // child output lines kept for error messages
)

// S3Config configures StartS3.
type S3Config struct {
	// DataDir is the gateway's state. Buckets are directories of
	// DataDir/buckets and objects are files inside them; when the file system
	// has no user xattrs, object metadata goes to DataDir/meta. Required; a
	// relative path is made absolute by StartS3. Created if missing.
	DataDir string
	// Addr is the S3 listen address, "host:port". Empty means 127.0.0.1 on a
	// random free port.
	Addr string
	// AccessKey and SecretKey are the root credentials. Empty means
	// DefaultS3AccessKey / DefaultS3SecretKey.
	AccessKey, SecretKey string
	// Region reported to clients. Empty means DefaultS3Region.
	Region string
}

// S3Server is a running S3-compatible gateway (versitygw with its posix
// backend) in a child process of the current binary.
type S3Server struct {
	// Endpoint is the base URL clients use, e.g. "http://127.0.0.1:9000".
	Endpoint string
	// Addr is Endpoint's "host:port".
	Addr string
	// AccessKey, SecretKey and Region are the credentials and region to sign
	// requests with (SigV4).
	AccessKey, SecretKey, Region string

	log      *slog.Logger
	cmd      *exec.Cmd
	lifeline *os.File // write end of the child's stdin; closing it stops the child
	done     chan struct{}
	waitErr  error // set before done is closed
	output   *s3Output

	closeOnce sync.Once
	closeErr  error
}

// s3ChildConfig is what the parent sends to the child as one JSON line on the
// child's stdin. Secrets travel over the pipe, not the environment.
type s3ChildConfig struct {
	Root      string `json:"root"`
	MetaDir   string `json:"metaDir"`
	Addr      string `json:"addr"`
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
	Region    string `json:"region"`
}

// StartS3 starts the S3 gateway in a child process (os.Executable() with
// SLUICE_DEVSTACK_ROLE=s3; the binary's main or TestMain must call RunChild
// first) and returns once the endpoint answers its health check.
//
// The gateway runs out of process because versitygw's posix backend changes
// the working directory and embedgw allows one gateway per process.
//
// ctx bounds start-up only (default 15 s when it has no deadline); call Close
// to stop the server. The child's stdin is a pipe held by this process: when
// this process exits for any reason, including SIGKILL, the pipe closes and
// the child shuts down. Child output is logged to log (nil discards it) at
// info level with component=s3.
func StartS3(ctx context.Context, cfg S3Config, log *slog.Logger) (*S3Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "s3")
	if cfg.DataDir == "" {
		return nil, errors.New("devstack: s3: DataDir: required")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("devstack: s3: DataDir: %w", err)
	}
	if cfg.AccessKey == "" {
		cfg.AccessKey = DefaultS3AccessKey
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey = DefaultS3SecretKey
	}
	if cfg.Region == "" {
		cfg.Region = DefaultS3Region
	}
	if cfg.Addr != "" {
		if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
			return nil, fmt.Errorf("devstack: s3: Addr: %w", err)
		}
	}
	root := filepath.Join(dataDir, "buckets")
	metaDir := filepath.Join(dataDir, "meta")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: s3: create data dir: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("devstack: s3: locate own executable: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s3ReadyTimeout)
		defer cancel()
	}

	tries := 1
	if cfg.Addr == "" {
		tries = s3StartTries
	}
	var errs []error
	for range tries {
		addr := cfg.Addr
		if addr == "" {
			addr, err = s3FreeAddr()
			if err != nil {
				return nil, err
			}
		}
		child := s3ChildConfig{
			Root: root, MetaDir: metaDir, Addr: addr,
			AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey, Region: cfg.Region,
		}
		srv, err := startS3Child(ctx, exe, child, log)
		if err == nil {
			log.InfoContext(ctx, "s3 gateway ready", "endpoint", srv.Endpoint, "data_dir", dataDir)
			return srv, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// startS3Child spawns one child and waits until it is healthy, exits, or ctx
// ends. On failure the child is stopped.
func startS3Child(ctx context.Context, exe string, child s3ChildConfig, log *slog.Logger) (*S3Server, error) {
	cfgLine, err := json.Marshal(child)
	if err != nil {
		return nil, fmt.Errorf("devstack: s3: encode child config: %w", err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("devstack: s3: lifeline pipe: %w", err)
	}
	out := newS3Output(log, s3TailLines)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"="+roleS3)
	cmd.Stdin = stdinR
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		stdinR.Close()
		stdinW.Close()
		return nil, fmt.Errorf("devstack: s3: start child %s: %w", exe, err)
	}
	stdinR.Close() // the child holds its own copy

	host, port, _ := net.SplitHostPort(child.Addr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, port)
	srv := &S3Server{
		Endpoint:  "http://" + addr,
		Addr:      addr,
		AccessKey: child.AccessKey,
		SecretKey: child.SecretKey,
		Region:    child.Region,
		log:       log,
		cmd:       cmd,
		lifeline:  stdinW,
		done:      make(chan struct{}),
		output:    out,
	}
	go func() {
		srv.waitErr = cmd.Wait()
		out.Flush()
		close(srv.done)
	}()

	if _, err := stdinW.Write(append(cfgLine, '\n')); err != nil {
		srv.Close()
		return nil, fmt.Errorf("devstack: s3: send child config: %w (output: %s)", err, out.Tail())
	}
	if err := srv.waitHealthy(ctx); err != nil {
		srv.Close()
		return nil, err
	}
	return srv, nil
}

// waitHealthy polls the health endpoint until it answers 200.
func (s *S3Server) waitHealthy(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	url := s.Endpoint + s3HealthPath
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("devstack: s3: health request: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return fmt.Errorf("devstack: s3: gateway on %s exited during start-up: %v (output: %s)",
				s.Addr, s.waitErr, s.output.Tail())
		case <-ctx.Done():
			return fmt.Errorf("devstack: s3: gateway on %s not ready: %w (output: %s)",
				s.Addr, ctx.Err(), s.output.Tail())
		case <-tick.C:
		}
	}
}

// Done is closed when the child process has exited.
func (s *S3Server) Done() <-chan struct{} { return s.done }

// Close stops the gateway: it closes the child's lifeline (the child then
// shuts down gracefully), waits up to 10 s and kills it if still running.
// It returns an error if the child had exited unexpectedly or did not stop
// in time. Safe to call more than once.
func (s *S3Server) Close() error {
	s.closeOnce.Do(func() {
		select {
		case <-s.done:
			// Exited on its own before Close: that is a crash.
			s.closeErr = fmt.Errorf("devstack: s3: gateway exited unexpectedly: %v (output: %s)", s.waitErr, s.output.Tail())
			s.lifeline.Close()
			return
		default:
		}
		s.lifeline.Close()
		timer := time.NewTimer(s3StopTimeout)
		defer timer.Stop()
		select {
		case <-s.done:
			if s.waitErr != nil {
				s.closeErr = fmt.Errorf("devstack: s3: gateway stopped with error: %v (output: %s)", s.waitErr, s.output.Tail())
			}
		case <-timer.C:
			_ = s.cmd.Process.Kill()
			<-s.done
			s.closeErr = fmt.Errorf("devstack: s3: gateway did not stop within %s; killed", s3StopTimeout)
		}
	})
	return s.closeErr
}

// RunChild runs the devstack child role selected by SLUICE_DEVSTACK_ROLE, if
// any, and then exits the process; it never returns in that case. Without
// the variable it returns false immediately. Every main() and TestMain of a
// binary that may start the devstack calls it first:
//
//	func main() {
//		devstack.RunChild()
//		...
//	}
func RunChild() bool {
	role, ok := os.LookupEnv(roleEnv)
	if !ok {
		return false
	}
	switch role {
	case roleS3:
		if err := runS3Child(); err != nil {
			fmt.Fprintf(os.Stderr, "devstack s3 child: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	default:
		fmt.Fprintf(os.Stderr, "devstack: unknown %s=%q\n", roleEnv, role)
		os.Exit(2)
	}
	return true // unreachable
}

// runS3Child reads its config line from stdin and runs the gateway until
// stdin reaches EOF (parent closed the lifeline or died) or SIGTERM arrives.
// SIGINT is ignored: on Ctrl-C in a terminal the parent decides when S3 stops.
func runS3Child() error {
	signal.Ignore(os.Interrupt)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read config from stdin: %w", err)
	}
	var cfg s3ChildConfig
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fmt.Errorf("decode config: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, in) // returns at EOF: the parent is gone
		cancel()
	}()

	// Object metadata lives in user xattrs when the file system supports
	// them (versitygw's default), otherwise in a sidecar directory.
	var ms meta.MetadataStorer = meta.XattrMeta{}
	// Copies are limited to the S3 maximum of 5 GiB per request, as on AWS.
	opts := posix.PosixOpts{CopyObjectThreshold: 5 << 30}
	if err := (meta.XattrMeta{}).Test(cfg.Root); err != nil {
		if err := os.MkdirAll(cfg.MetaDir, 0o755); err != nil {
			return fmt.Errorf("create metadata dir: %w", err)
		}
		sc, err := meta.NewSideCar(cfg.MetaDir)
		if err != nil {
			return fmt.Errorf("sidecar metadata: %w", err)
		}
		ms = sc
		opts.SideCarDir = cfg.MetaDir
	}
	// The gateway's graceful shutdown waits up to 10 s for clients' idle
	// keep-alive connections, which the parent's clients usually hold. The
	// parent stops S3 after its users, so a short grace period is enough.
	go func() {
		<-ctx.Done()
		time.Sleep(s3ShutdownGrace)
		os.Exit(0)
	}()
	be, err := posix.New(cfg.Root, ms, opts) // changes the working directory
	if err != nil {
		return fmt.Errorf("posix backend: %w", err)
	}
	err = embedgw.RunVersityGW(ctx, be, &embedgw.Config{
		RootUserAccess:    cfg.AccessKey,
		RootUserSecret:    cfg.SecretKey,
		Region:            cfg.Region,
		Ports:             []string{cfg.Addr},
		MaxConnections:    4096,
		MaxRequests:       1024,
		MultipartMaxParts: 10000,
		HealthPath:        s3HealthPath,
		Quiet:             true,
		KeepAlive:         true,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// s3FreeAddr picks a free loopback port for the child, which binds it itself: below the kernel's
// ephemeral range (see [netport.Free]); StartS3 retries on the rare collision.
func s3FreeAddr() (string, error) {
	port, err := netport.Free(loopback)
	if err != nil {
		return "", fmt.Errorf("devstack: s3: %w", err)
	}
	return hostPort(port), nil
}

// s3Output is an io.Writer that logs each complete line of child output and
// keeps the last few lines for error messages.
type s3Output struct {
	log  *slog.Logger
	keep int

	mu   sync.Mutex
	buf  []byte
	tail []string
}

func newS3Output(log *slog.Logger, keep int) *s3Output {
	return &s3Output{log: log, keep: keep}
}

func (l *s3Output) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

// Flush logs a trailing partial line.
func (l *s3Output) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(string(l.buf))
		l.buf = nil
	}
}

func (l *s3Output) emit(line string) {
	line = strings.TrimRight(line, "\r")
	if line == "" {
		return
	}
	l.log.Info("s3 gateway output", "line", line)
	l.tail = append(l.tail, line)
	if len(l.tail) > l.keep {
		l.tail = l.tail[len(l.tail)-l.keep:]
	}
}

// Tail returns the last lines of output joined with " | ".
func (l *s3Output) Tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.tail) == 0 {
		return "none"
	}
	return strings.Join(l.tail, " | ")
}
