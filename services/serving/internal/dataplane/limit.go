package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// ErrOverloaded is returned when the bytes of the requests in flight would exceed the server's
// budget (Options.MaxInflightBytes); REST answers 429, gRPC RESOURCE_EXHAUSTED. The client may
// retry later.
var ErrOverloaded = errors.New("dataplane: request bytes in flight exceed the server's budget")

// Costs charged to a request's lease on top of its body, measured on numeric bodies
// (TestPeakHeapWithinBudget): the numeric fast path decodes into a tensor of at most 2x the body
// ("1," is 2 bytes of text and 4 of float32); the generic JSON parser builds a tree node per value,
// ~20x the text; a response is charged its tensors plus ~12 bytes of text per element.
const (
	fastParseFactor    = 2
	genericParseFactor = 24
	responseTextBytes  = 12
)

// budget counts the bytes of requests in flight against a cap. Acquire never blocks: past the
// cap the request is refused at once, so memory stays bounded and overload is answered quickly.
type budget struct {
	max  int64
	used atomic.Int64
}

// acquire reserves n bytes, or reports false when that would exceed the cap.
func (b *budget) acquire(n int64) bool {
	for {
		cur := b.used.Load()
		if cur+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

func (b *budget) release(n int64) { b.used.Add(-n) }

// InflightBytes reports the request bytes currently accounted to requests in flight.
func (s *Server) InflightBytes() int64 { return s.budget.used.Load() }

// lease is a request's share of the budget; release returns all of it.
type lease struct {
	b *budget
	n int64
	// floats are the recycled slices the request's tensors were decoded into (gRPC), returned to
	// floatPool on release.
	floats []*[]float32
}

func (l *lease) grow(n int64) error {
	if !l.b.acquire(n) {
		return fmt.Errorf("%w (%d bytes in flight, cap %d): retry later", ErrOverloaded, l.b.used.Load(), l.b.max)
	}
	l.n += n
	return nil
}

func (l *lease) release() {
	l.b.release(l.n)
	l.n = 0
	for _, p := range l.floats {
		putFloats(p)
	}
	l.floats = nil
}

// unalias replaces the outputs that share memory with the request's recycled slices (a model
// returning a view of its input) by copies, so the response stays valid once the lease is released.
func (l *lease) unalias(out map[string]modelruntime.Tensor) {
	if len(l.floats) == 0 {
		return
	}
	for name, t := range out {
		if overlapsFloats(t.Data, l.floats) {
			t.Data = slices.Clone(t.Data.([]float32))
			out[name] = t
		}
	}
}

// readBody reads the request body within MaxBodyBytes, reserving its bytes in the in-flight
// budget before they are read: the declared Content-Length at once, a body of unknown length
// chunk by chunk. The caller releases the lease when the response is written.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *lease, bool) {
	l := &lease{b: &s.budget}
	limit := s.opts.MaxBodyBytes
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, limit))
		return nil, l, false
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var buf []byte
	if r.ContentLength > 0 {
		if err := l.grow(r.ContentLength + 1); err != nil {
			writeErr(w, err)
			return nil, l, false
		}
		buf = getBody(int(r.ContentLength) + 1)
	}
	const chunk = 64 << 10
	for {
		if len(buf) == cap(buf) {
			if err := l.grow(chunk); err != nil {
				l.release()
				writeErr(w, err)
				return nil, l, false
			}
			buf = append(buf, make([]byte, chunk)...)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, l, true
		}
		if err != nil {
			l.release()
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the limit of %d bytes", limit))
			} else {
				writeError(w, http.StatusBadRequest, "read request body: "+err.Error())
			}
			return nil, l, false
		}
	}
}

// chargeGeneric reserves the extra memory of a generic parse of body.
func (l *lease) chargeGeneric(body []byte) error {
	return l.grow(int64(len(body)) * genericParseFactor)
}

// chargeFast reserves the tensor a fast-path parse of body decodes into.
func (l *lease) chargeFast(body []byte) error {
	return l.grow(int64(len(body)) * fastParseFactor)
}

// chargeResponse reserves the output tensors and their encoding before a response is written.
func (l *lease) chargeResponse(out map[string]modelruntime.Tensor) error {
	var n int64
	for _, t := range out {
		n += int64(modelruntime.DataLen(t.Data)) * int64(max(t.DataType.Size(), 8)+responseTextBytes)
	}
	return l.grow(n)
}

// bodyPool recycles request body buffers of up to maxPooledBody bytes, so a busy server does not
// allocate and zero a buffer per request. Idle buffers are not charged to the budget; the pool
// drops them within two garbage collections.
var bodyPool sync.Pool // of *[]byte

const maxPooledBody = 1 << 20

// getBody returns an empty buffer of capacity at least n.
func getBody(n int) []byte {
	if n <= maxPooledBody {
		if p, ok := bodyPool.Get().(*[]byte); ok && cap(*p) >= n {
			return (*p)[:0]
		}
	}
	return make([]byte, 0, n)
}

// putBody recycles a buffer from readBody once nothing refers to it any more (decoders copy what
// they keep).
func putBody(b []byte) {
	if c := cap(b); c > 0 && c <= maxPooledBody {
		b = b[:0]
		bodyPool.Put(&b)
	}
}
