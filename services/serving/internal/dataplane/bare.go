package dataplane

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"

	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
)

// BareHandler is the serving benchmark's baseline, not a product path: a minimal, hand-written
// TF Serving :predict server for one servable with a single FP32 input and a single FP32 output of
// shape [batch, k]. It reads the body into a pooled buffer, decodes the row-format tensor with the
// same numeric scanner as the product into a recycled tensor (so the baseline is never slower at
// decoding), calls Predict and appends the predictions with strconv into a pooled buffer. It has no routing, model lookup,
// traffic split, in-flight budget, validation beyond the decoder, or error shapes: anything it
// cannot decode is a bare 400. The product's latency over this handler is what Server itself adds.
func BareHandler(sv *modelrepo.Servable) http.Handler {
	in, out := sv.Model.Inputs(), sv.Model.Outputs()
	pool := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := pool.Get().(*bytes.Buffer)
		defer pool.Put(buf)
		buf.Reset()
		if r.ContentLength > 0 {
			buf.Grow(int(r.ContentLength) + 1)
		}
		if _, err := buf.ReadFrom(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, ok := fastTFPredict(buf.Bytes(), in)
		if !ok || len(out) != 1 {
			http.Error(w, "bare: not a numeric row-format body for this model", http.StatusBadRequest)
			return
		}
		defer req.recycle() // as the product does, after the response is written
		res, err := sv.Predict(r.Context(), req.inputs)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		y := res[out[0].Name]
		data, ok := y.Data.([]float32)
		if !ok || len(y.Shape) != 2 {
			http.Error(w, "bare: output is not a [batch, k] FP32 tensor", http.StatusInternalServerError)
			return
		}
		k := int(y.Shape[1])
		buf.Reset()
		b := append(buf.AvailableBuffer(), `{"predictions":[`...)
		for row := range int(y.Shape[0]) {
			if row > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			for i, v := range data[row*k : (row+1)*k] {
				if i > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, "]}"...)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	})
}
