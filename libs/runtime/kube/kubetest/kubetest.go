// Package kubetest runs a real Kubernetes API server for tests, the way controller-runtime's envtest
// does: etcd on a temporary directory and kube-apiserver in front of it (secure port on 127.0.0.1 with
// a self-signed certificate, a static admin token, AlwaysAllow authorization unless [AuthorizationMode]
// says otherwise, a service-account key).
// No kubelet, scheduler or controller-manager runs: pods stay Pending until a test writes their status
// through the status subresource, and nothing garbage-collects by owner reference.
//
// The binaries are built from the module proxy by `make kube-tools` into bin/tools/kube/ (kube-apiserver
// from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3; see deploy/kubernetes/tools/go.mod).
// SLUICE_KUBE_TOOLS names another directory holding both.
package kubetest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sluice-ml/sluice/libs/netport"
)

// AuthorizationMode is kube-apiserver's --authorization-mode for the server Start starts: AlwaysAllow by
// default; "RBAC" makes Roles and RoleBindings decide for every identity but the admin (system:masters),
// for tests of what a service account may do. Set it before the first Start (e.g. in TestMain).
var AuthorizationMode = "AlwaysAllow"

// EnvTools is the variable naming the directory that holds etcd and kube-apiserver.
const EnvTools = "SLUICE_KUBE_TOOLS"

// Server is a running API server.
type Server struct {
	// Config reaches it as cluster admin.
	Config *rest.Config
	// Client and Dynamic are clients for Config.
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	// Kubeconfig is a kubeconfig file for Config (for code that loads one, like SLUICE_RUNTIME=kubernetes).
	Kubeconfig string
}

// ToolsDir returns the directory of the binaries: SLUICE_KUBE_TOOLS, else bin/tools/kube of the
// enclosing go.work checkout.
func ToolsDir() string {
	if d := os.Getenv(EnvTools); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return filepath.Join(dir, "bin", "tools", "kube")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
)

// Start returns the package's API server, started on first use and stopped when the process exits
// (call Stop from TestMain to end it sooner). Without the binaries the test is skipped with how to
// build them, except under CI=true, where it fails: CI builds them first.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := ToolsDir()
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			msg := fmt.Sprintf("kubetest: %s not found in %q: run `make kube-tools` (or set %s)", b, dir, EnvTools)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	sharedOnce.Do(func() { shared, sharedErr = start(dir) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

var procs struct {
	sync.Mutex
	cmds []*exec.Cmd
	dir  string
}

// Stop ends the API server and etcd and removes their files.
func Stop() {
	procs.Lock()
	defer procs.Unlock()
	for i := len(procs.cmds) - 1; i >= 0; i-- {
		c := procs.cmds[i]
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	procs.cmds = nil
	if procs.dir != "" {
		_ = os.RemoveAll(procs.dir)
		procs.dir = ""
	}
}

func start(tools string) (*Server, error) {
	dir, err := os.MkdirTemp("", "sluice-kubetest-")
	if err != nil {
		return nil, err
	}
	procs.Lock()
	procs.dir = dir
	procs.Unlock()
	fail := func(err error) (*Server, error) { Stop(); return nil, err }

	// etcd and kube-apiserver bind their ports themselves: ones below the kernel's ephemeral range,
	// which no outgoing connection or ":0" listener can take before they do.
	ports, err := netport.FreeN("127.0.0.1", 3)
	if err != nil {
		return fail(err)
	}
	clientPort, peerPort, port := ports[0], ports[1], ports[2]
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	if err := run(dir, "etcd", filepath.Join(tools, "etcd"),
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster=default=http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--unsafe-no-fsync=true", "--log-level=warn",
	); err != nil {
		return fail(err)
	}

	certFile, keyFile, caPEM, err := selfSigned(dir)
	if err != nil {
		return fail(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fail(err)
	}
	if err := os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}), 0o600); err != nil {
		return fail(err)
	}
	token := rand.Text()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return fail(err)
	}
	if err := run(dir, "kube-apiserver", filepath.Join(tools, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--tls-cert-file="+certFile, "--tls-private-key-file="+keyFile,
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--token-auth-file="+tokens, "--authorization-mode="+AuthorizationMode,
		"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
		// No controller-manager creates the default service account pods would mount.
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
	); err != nil {
		return fail(err)
	}
	cfg := &rest.Config{Host: "https://127.0.0.1:" + strconv.Itoa(port), BearerToken: token,
		TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}, QPS: 200, Burst: 400}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	// Ready once /readyz answers and the default namespace exists (the apiserver's bootstrap controller).
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		cancel()
		if err == nil && bytes.Equal(bytes.TrimSpace(body), []byte("ok")) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = cs.CoreV1().Namespaces().Get(ctx, "default", metaGet)
			cancel()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			logs, _ := os.ReadFile(filepath.Join(dir, "kube-apiserver.log"))
			return fail(fmt.Errorf("kubetest: kube-apiserver not ready after 3 min: %v\n%s", err, tail(logs, 4000)))
		}
		time.Sleep(200 * time.Millisecond)
	}
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, []byte(kubeconfig(cfg.Host, caPEM, token)), 0o600); err != nil {
		return fail(err)
	}
	return &Server{Config: cfg, Client: cs, Dynamic: dyn, Kubeconfig: kc}, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// run starts one binary with its output in dir/<name>.log; it is stopped by Stop.
func run(dir, name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	c := exec.Command(bin, args...)
	c.Stdout, c.Stderr = log, log
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		log.Close()
		return fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	procs.Lock()
	procs.cmds = append(procs.cmds, c)
	procs.Unlock()
	return nil
}

// selfSigned writes a self-signed serving certificate for 127.0.0.1 and localhost.
func selfSigned(dir string) (certFile, keyFile string, certPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "kubetest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certFile, keyFile = filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", nil, err
	}
	return certFile, keyFile, certPEM, nil
}

func kubeconfig(host string, ca []byte, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: admin}
current-context: kubetest
`, host, b64(ca), token)
}
