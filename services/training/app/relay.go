package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"

	"github.com/docker/docker/api/types/network"

	"github.com/sluice-ml/sluice/libs/runtime/docker"
)

// ContainerS3EndpointEnv overrides the S3 endpoint given to replicas in
// containers (SLUICE_RUNTIME_S3_ENDPOINT), e.g. http://s3:9000 or
// http://192.168.1.5:9000, for a store the containers reach by another
// address than the service does.
const ContainerS3EndpointEnv = "SLUICE_RUNTIME_S3_ENDPOINT"

// isLoopback reports whether host names this machine's loopback interface.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// containerEndpoint is the URL replicas in Docker containers use for the
// service at endpoint: override when set; endpoint itself unless its host
// is loopback (a container's loopback is its own); otherwise the address
// of a relay that listens on the Docker host's bridge gateway (reachable
// from every container on this daemon) and forwards to endpoint. The relay
// is closed by the returned func.
func containerEndpoint(ctx context.Context, rt *docker.Runtime, endpoint, override string) (string, func(), error) {
	if override != "" {
		return override, func() {}, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || !isLoopback(u.Hostname()) {
		return endpoint, func() {}, err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443"}[u.Scheme]
		if port == "" {
			port = "80"
		}
	}
	gw, err := bridgeGateway(ctx, rt)
	if err != nil {
		return endpoint, func() {}, fmt.Errorf("no address of the Docker host reachable from containers (set %s): %w", ContainerS3EndpointEnv, err)
	}
	r, err := newRelay(net.JoinHostPort(gw, "0"), net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return endpoint, func() {}, fmt.Errorf("relay for %s on %s (set %s): %w", endpoint, gw, ContainerS3EndpointEnv, err)
	}
	out := *u
	out.Host = r.ln.Addr().String()
	return out.String(), r.close, nil
}

// bridgeGateway is the Docker host's address on the default bridge
// network (docker0), which containers on any network of the daemon reach.
func bridgeGateway(ctx context.Context, rt *docker.Runtime) (string, error) {
	nw, err := rt.Client().NetworkInspect(ctx, "bridge", network.InspectOptions{})
	if err == nil {
		for _, c := range nw.IPAM.Config {
			if ip := net.ParseIP(c.Gateway); ip != nil && ip.To4() != nil {
				return c.Gateway, nil
			}
		}
	}
	name := "docker0"
	if err == nil {
		if n := nw.Options["com.docker.network.bridge.name"]; n != "" {
			name = n
		}
	}
	iface, ierr := net.InterfaceByName(name)
	if ierr != nil {
		return "", errors.Join(err, ierr)
	}
	addrs, ierr := iface.Addrs()
	if ierr != nil {
		return "", ierr
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String(), nil
		}
	}
	return "", fmt.Errorf("interface %s has no IPv4 address", name)
}

// relay forwards every TCP connection accepted on ln to target.
type relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

func newRelay(listen, target string) (*relay, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.pipe(c)
	}
}

func (r *relay) track(c net.Conn, add bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !add {
		delete(r.conns, c)
		return true
	}
	if r.conns == nil {
		return false // closed
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) pipe(c net.Conn) {
	defer r.wg.Done()
	defer c.Close()
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !r.track(c, true) || !r.track(up, true) {
		return
	}
	defer r.track(c, false)
	defer r.track(up, false)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(up, c)
	go cp(c, up)
	<-done
	<-done
}

func (r *relay) close() {
	_ = r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}
