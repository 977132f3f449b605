package spawner

import (
	"bufio"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-ml/sluice/libs/runtime"
)

// The warm pool keeps Config.WarmPool Python processes ("zygotes") that have already imported the Jupyter
// Notebook server and what it loads while starting, each blocked reading a launch spec from its own FIFO.
// Jupyter's base_url, directories and token are fixed when the server starts, so a started server cannot
// serve a notebook whose name was unknown then; a zygote can: on a claim the spawner writes the spec (the
// argv, environment and working directory a cold start uses, the log file, and the namespace's user under
// isolation) and the zygote becomes that notebook's server. A claimed zygote belongs to that one notebook
// until it ends (never handed back, so no state passes between namespaces); the pool refills itself in the
// background, one zygote at a time so the refill does not compete with the servers being started.
//
// Only the local runtime has a pool: zygotes are host processes of the service, started through it (own
// process group, parent-death signal, ledger), so they end and are cleaned up like any server.

//go:embed zygote.py
var zygoteScript []byte

type zygote struct {
	id   string
	proc runtime.Process
	fifo *os.File // write end; the zygote reads the launch spec from it
}

// launchSpec is what a zygote reads (see zygote.py).
type launchSpec struct {
	Argv []string          `json:"argv"`
	Env  map[string]string `json:"env"`
	Cwd  string            `json:"cwd"`
	Log  string            `json:"log"`
	UID  *uint32           `json:"uid"`
	GID  *uint32           `json:"gid"`
}

type pool struct {
	size   int
	rt     runtime.Runtime
	python string
	dir    string
	script string
	path   string
	log    *slog.Logger
	out    *os.File

	// starting counts the servers being started (Spawner.Start until ready): the refill waits for them.
	starting atomic.Int32

	mu     sync.Mutex
	idle   []*zygote
	closed bool
	wake   chan struct{}
	done   chan struct{}
	exited chan struct{}
}

// newPool prepares dir (emptied: what an earlier process left there is stale) and starts the refill loop.
func newPool(size int, rt runtime.Runtime, python, dir, path string, log *slog.Logger) (*pool, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("spawner: warm pool: %w", err)
	}
	// The servers' directory above is 0711 under isolation (see isolate): namespace users must traverse it.
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return nil, fmt.Errorf("spawner: warm pool: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spawner: warm pool: %w", err)
	}
	script := filepath.Join(dir, "zygote.py")
	if err := os.WriteFile(script, zygoteScript, 0o600); err != nil {
		return nil, fmt.Errorf("spawner: warm pool: %w", err)
	}
	out, err := os.OpenFile(filepath.Join(dir, "pool.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spawner: warm pool: %w", err)
	}
	p := &pool{size: size, rt: rt, python: python, dir: dir, script: script, path: path, log: log, out: out,
		wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	go p.loop()
	return p, nil
}

func (p *pool) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// loop keeps size zygotes idle, starting one at a time and backing off after failures.
func (p *pool) loop() {
	defer close(p.exited)
	backoff := time.Second
	for {
		p.mu.Lock()
		n, closed := len(p.idle), p.closed
		p.mu.Unlock()
		if closed {
			return
		}
		if n >= p.size {
			select {
			case <-p.wake:
			case <-p.done:
				return
			}
			continue
		}
		// A refill competes for the CPU with the servers starting now: let them be ready first (bounded).
		for quiet := time.Now().Add(refillQuiet); p.starting.Load() > 0 && time.Now().Before(quiet); {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-p.done:
				return
			}
		}
		z, err := p.spawn()
		if err != nil {
			if errors.Is(err, errPoolClosed) {
				return
			}
			p.log.Warn("notebook warm pool: a warm server did not start; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-p.done:
				return
			}
			backoff = min(2*backoff, time.Minute)
			continue
		}
		backoff = time.Second
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			z.end()
			return
		}
		p.idle = append(p.idle, z)
		p.mu.Unlock()
		go p.watch(z)
	}
}

var errPoolClosed = errors.New("spawner: warm pool closed")

// refillQuiet bounds how long a refill waits for starting servers to be ready.
const refillQuiet = 10 * time.Second

// spawn starts one zygote and waits until it has opened its FIFO (its imports are done).
func (p *pool) spawn() (*zygote, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	fifo := filepath.Join(p.dir, id+".fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		return nil, fmt.Errorf("mkfifo: %w", err)
	}
	defer os.Remove(fifo)
	proc, err := p.rt.Start(context.Background(), runtime.Spec{
		Name:    "notebook-zygote-" + id,
		Command: []string{p.python},
		// The id in argv lets reapOrphan recognise a claimed zygote in /proc/<pid>/cmdline.
		Args:    []string{p.script, fifo, "sluice-zygote=" + id},
		Env:     map[string]string{"PATH": p.path, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "HOME": p.dir},
		WorkDir: p.dir,
		Stdout:  p.out,
		Stderr:  p.out,
	})
	if err != nil {
		return nil, err
	}
	z := &zygote{id: id, proc: proc}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	limit := time.After(2 * time.Minute)
	for {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			z.fifo = f
			return z, nil
		}
		if !errors.Is(err, syscall.ENXIO) {
			z.end()
			return nil, fmt.Errorf("open %s: %w", fifo, err)
		}
		select {
		case <-proc.Done():
			st, _ := proc.Wait(context.Background())
			return nil, fmt.Errorf("warm server exited before it was ready (code %d); see %s", st.Code, p.out.Name())
		case <-limit:
			z.end()
			return nil, fmt.Errorf("warm server not ready within 2m; see %s", p.out.Name())
		case <-p.done:
			z.end()
			return nil, errPoolClosed
		case <-t.C:
		}
	}
}

// watch drops an idle zygote that ends by itself, so the loop replaces it.
func (p *pool) watch(z *zygote) {
	<-z.proc.Done()
	p.mu.Lock()
	for i, y := range p.idle {
		if y == z {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			_ = z.fifo.Close()
			break
		}
	}
	p.mu.Unlock()
	p.poke()
}

// claim takes an idle zygote (nil when none is ready) and has the pool start a replacement.
func (p *pool) claim() *zygote {
	defer p.poke()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.idle) > 0 {
		z := p.idle[0]
		p.idle = p.idle[1:]
		select {
		case <-z.proc.Done():
			_ = z.fifo.Close()
			continue
		default:
		}
		return z
	}
	return nil
}

// ready is the number of idle zygotes.
func (p *pool) ready() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// launch hands spec to z, which becomes that server; on error z has been ended.
func (z *zygote) launch(spec launchSpec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		z.end()
		return err
	}
	_ = z.fifo.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = z.fifo.Write(b)
	if cerr := z.fifo.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		z.end()
		return fmt.Errorf("spawner: hand the launch spec to warm server %s: %w", z.id, err)
	}
	return nil
}

func (z *zygote) end() {
	if z.fifo != nil {
		_ = z.fifo.Close()
	}
	_ = z.proc.Kill()
	<-z.proc.Done()
}

// close stops the refill and ends every idle zygote.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	close(p.done)
	<-p.exited
	for _, z := range idle {
		z.end()
	}
	_ = p.out.Close()
}

// interpreter returns the Python that runs the jupyter launcher, from its "#!" line ("" when it is not a
// Python script: the pool is then off).
func interpreter(jupyter, path string) string {
	f, err := os.Open(jupyter)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if !strings.HasPrefix(line, "#!") || len(fields) == 0 {
		return ""
	}
	py := fields[0]
	if filepath.Base(py) == "env" && len(fields) > 1 {
		py = fields[1]
		if !filepath.IsAbs(py) {
			for _, d := range filepath.SplitList(path) {
				if c := filepath.Join(d, py); filepath.IsAbs(c) {
					if _, err := exec.LookPath(c); err == nil {
						py = c
						break
					}
				}
			}
		}
	}
	if !filepath.IsAbs(py) || !strings.HasPrefix(filepath.Base(py), "python") {
		return ""
	}
	return py
}
