// Package paramserver is the parameter server of the MNIST example: a PS
// replica holds one contiguous shard of the parameter vector, collects one
// gradient per worker for the current step, and applies their mean with SGD
// and momentum once all have arrived (a synchronous step barrier). It is
// served over net/rpc.
package paramserver

import (
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"sync"
	"time"
)

// ServiceName is the net/rpc service name.
const ServiceName = "PS"

// InitArgs (re)initialises a shard. A new Epoch identifies the
// initialisation so workers notice a restart.
type InitArgs struct {
	Epoch    int64
	Params   []float32
	Step     int64
	Steps    int64
	Workers  int
	LR       float32
	Momentum float32
}

// Status describes a shard.
type Status struct {
	Initialized bool
	Epoch       int64
	Step        int64
	Steps       int64
	Workers     int
	Size        int
}

// PullArgs asks for the shard once its step reaches MinStep, waiting at
// most WaitMillis.
type PullArgs struct {
	MinStep    int64
	WaitMillis int
}

// PullReply carries the shard's state and parameters.
type PullReply struct {
	Status Status
	Params []float32
}

// PushArgs carries one worker's gradient for the shard at (Epoch, Step).
type PushArgs struct {
	Epoch  int64
	Step   int64
	Worker int
	Grad   []float32
}

// PushReply says whether the gradient was taken and the shard's step after it.
type PushReply struct {
	Accepted bool
	Step     int64
}

// Server holds one shard. The zero value is uninitialised and ready to serve.
type Server struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever the step or epoch changes
	st       Status
	params   []float32
	velocity []float32
	lr, mom  float32
	acc      []float32
	pushed   map[int]bool
}

// NewServer returns an uninitialised shard.
func NewServer() *Server { return &Server{changed: make(chan struct{})} }

func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Init (re)initialises the shard.
func (s *Server) Init(args InitArgs, reply *Status) error {
	if args.Workers < 1 {
		return errors.New("paramserver: workers must be >= 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.params = append([]float32(nil), args.Params...)
	s.velocity = make([]float32, len(args.Params))
	s.acc = make([]float32, len(args.Params))
	s.pushed = map[int]bool{}
	s.lr, s.mom = args.LR, args.Momentum
	s.st = Status{Initialized: true, Epoch: args.Epoch, Step: args.Step, Steps: args.Steps, Workers: args.Workers, Size: len(args.Params)}
	s.notify()
	*reply = s.st
	return nil
}

// Status reports the shard's state.
func (s *Server) Status(_ int, reply *Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	*reply = s.st
	return nil
}

// Pull returns the parameters once the step reaches MinStep or the wait
// expires, whichever is first.
func (s *Server) Pull(args PullArgs, reply *PullReply) error {
	deadline := time.Now().Add(time.Duration(args.WaitMillis) * time.Millisecond)
	for {
		s.mu.Lock()
		if (s.st.Initialized && s.st.Step >= args.MinStep) || !time.Now().Before(deadline) {
			reply.Status = s.st
			reply.Params = append([]float32(nil), s.params...)
			s.mu.Unlock()
			return nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
		}
	}
}

// Push adds a worker's gradient for the current step; a gradient for
// another epoch or step, or a second one from the same worker, is ignored.
// When every worker has pushed, the mean gradient is applied and the step
// advances.
func (s *Server) Push(args PushArgs, reply *PushReply) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	reply.Step = s.st.Step
	if !s.st.Initialized || args.Epoch != s.st.Epoch || args.Step != s.st.Step || s.pushed[args.Worker] || s.st.Step >= s.st.Steps {
		return nil
	}
	if len(args.Grad) != len(s.acc) {
		return fmt.Errorf("paramserver: gradient of %d values for a shard of %d", len(args.Grad), len(s.acc))
	}
	if args.Worker < 0 || args.Worker >= s.st.Workers {
		return fmt.Errorf("paramserver: worker %d out of range [0,%d)", args.Worker, s.st.Workers)
	}
	for i, g := range args.Grad {
		s.acc[i] += g
	}
	s.pushed[args.Worker] = true
	reply.Accepted = true
	if len(s.pushed) < s.st.Workers {
		return nil
	}
	inv := 1 / float32(s.st.Workers)
	for i := range s.params {
		v := s.mom*s.velocity[i] + s.acc[i]*inv
		s.velocity[i] = v
		s.params[i] -= s.lr * v
		s.acc[i] = 0
	}
	clear(s.pushed)
	s.st.Step++
	reply.Step = s.st.Step
	s.notify()
	return nil
}

// Serve registers srv under ServiceName and serves net/rpc connections on l
// until l is closed.
func Serve(l net.Listener, srv *Server) error {
	rs := rpc.NewServer()
	if err := rs.RegisterName(ServiceName, srv); err != nil {
		return err
	}
	rs.Accept(l)
	return nil
}

// Shard is one parameter-server shard as a client sees it.
type Shard interface {
	Init(InitArgs) (Status, error)
	Status() (Status, error)
	Pull(PullArgs) (PullReply, error)
	Push(PushArgs) (PushReply, error)
}

// Local adapts an in-process Server to Shard.
type Local struct{ S *Server }

func (l Local) Init(a InitArgs) (st Status, err error)   { err = l.S.Init(a, &st); return }
func (l Local) Status() (st Status, err error)           { err = l.S.Status(0, &st); return }
func (l Local) Pull(a PullArgs) (r PullReply, err error) { err = l.S.Pull(a, &r); return }
func (l Local) Push(a PushArgs) (r PushReply, err error) { err = l.S.Push(a, &r); return }

// Remote is a Shard served by another replica at Addr; it (re)dials on
// demand.
type Remote struct {
	Addr string
	mu   sync.Mutex
	c    *rpc.Client
}

func (r *Remote) call(method string, args, reply any) error {
	r.mu.Lock()
	c := r.c
	if c == nil {
		var err error
		c, err = rpc.Dial("tcp", r.Addr)
		if err != nil {
			r.mu.Unlock()
			return fmt.Errorf("paramserver: dial %s: %w", r.Addr, err)
		}
		r.c = c
	}
	r.mu.Unlock()
	err := c.Call(ServiceName+"."+method, args, reply)
	var remote rpc.ServerError
	if err != nil && !errors.As(err, &remote) {
		// The connection is unusable; dial again on the next call.
		r.mu.Lock()
		if r.c == c {
			r.c.Close()
			r.c = nil
		}
		r.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("paramserver: %s %s: %w", r.Addr, method, err)
	}
	return nil
}

func (r *Remote) Init(a InitArgs) (st Status, err error)   { err = r.call("Init", a, &st); return }
func (r *Remote) Status() (st Status, err error)           { err = r.call("Status", 0, &st); return }
func (r *Remote) Pull(a PullArgs) (p PullReply, err error) { err = r.call("Pull", a, &p); return }
func (r *Remote) Push(a PushArgs) (p PushReply, err error) { err = r.call("Push", a, &p); return }

// Close closes the connection, if any.
func (r *Remote) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.c == nil {
		return nil
	}
	err := r.c.Close()
	r.c = nil
	return err
}

// Ranges splits n parameters into k contiguous shards as evenly as possible
// and returns [lo, hi) for each.
func Ranges(n, k int) [][2]int {
	out := make([][2]int, k)
	lo := 0
	for i := range k {
		size := n / k
		if i < n%k {
			size++
		}
		out[i] = [2]int{lo, lo + size}
		lo += size
	}
	return out
}
