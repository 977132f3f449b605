package dataplane

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// KServe v2 Open Inference Protocol, REST (kserve docs/predict-api/v2/required_api.md).

// platformONNX is the v2 platform name of ONNX models (as Triton reports it).
const platformONNX = "onnxruntime_onnx"

func (s *Server) serveV2(w http.ResponseWriter, r *http.Request, segs []string) {
	switch {
	case len(segs) == 0 && r.Method == http.MethodGet:
		b := []byte(`{"name":`)
		b = appendString(b, s.opts.Name)
		b = append(b, `,"version":`...)
		b = appendString(b, s.opts.Version)
		writeJSON(w, http.StatusOK, append(b, `,"extensions":[]}`...))
		return
	case len(segs) == 2 && segs[0] == "health" && r.Method == http.MethodGet:
		// Bodies as the protocol documents them ({"live": bool}, {"ready": bool}); the status
		// code alone also answers the probe.
		switch segs[1] {
		case "live":
			writeJSON(w, http.StatusOK, []byte(`{"live":true}`))
			return
		case "ready":
			if s.ServerReady() {
				writeJSON(w, http.StatusOK, []byte(`{"ready":true}`))
			} else {
				writeJSON(w, http.StatusServiceUnavailable, []byte(`{"ready":false}`))
			}
			return
		}
	case len(segs) >= 2 && segs[0] == "models":
		t := target{model: segs[1]}
		rest := segs[2:]
		if len(rest) >= 2 && rest[0] == "versions" {
			v, err := strconv.ParseInt(rest[1], 10, 64)
			if err != nil || v < 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid model version %q: must be a non-negative integer", rest[1]))
				return
			}
			t.version, t.hasVer = v, true
			rest = rest[2:]
		}
		switch {
		case len(rest) == 0 && r.Method == http.MethodGet:
			s.v2Metadata(w, t)
			return
		case len(rest) == 1 && rest[0] == "ready" && r.Method == http.MethodGet:
			s.v2Ready(w, t)
			return
		case len(rest) == 1 && rest[0] == "infer" && r.Method == http.MethodPost:
			s.v2Infer(w, r, t)
			return
		}
	}
	writeError(w, http.StatusNotFound, "Not Found: "+r.Method+" "+r.URL.Path)
}

// ServerReady reports v2 server readiness: the server is ready (a restarted process has reloaded
// its deployments) and every model has an available version.
func (s *Server) ServerReady() bool {
	if !s.Ready() {
		return false
	}
	for _, backends := range *s.models.Load() {
		for _, b := range backends {
			if _, err := b.Manager.Snapshot().Latest(); err != nil {
				return false
			}
		}
	}
	return true
}

// ModelReady reports whether the model (a version of it when hasVersion) is ready, and whether it
// is known at all.
func (s *Server) ModelReady(model string, version int64, hasVersion bool) (ready, known bool) {
	backends, ok := s.backends(model)
	if !ok {
		return false, false
	}
	if !s.Ready() {
		return false, true
	}
	for _, b := range backends {
		snap := b.Manager.Snapshot()
		if hasVersion {
			if _, err := snap.Version(version); err == nil {
				return true, true
			}
			continue
		}
		if _, err := snap.Latest(); err == nil {
			return true, true
		}
	}
	return false, true
}

// v2Ready answers {"name": model, "ready": bool}: 200 when ready, 503 when not.
func (s *Server) v2Ready(w http.ResponseWriter, t target) {
	ready, known := s.ModelReady(t.model, t.version, t.hasVer)
	if !known {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Model with name %s does not exist.", t.model))
		return
	}
	b := append(appendString([]byte(`{"name":`), t.model), `,"ready":`...)
	b = strconv.AppendBool(b, ready)
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, append(b, '}'))
}

func (s *Server) v2Metadata(w http.ResponseWriter, t target) {
	if _, ok := s.backends(t.model); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Model with name %s does not exist.", t.model))
		return
	}
	sv, err := s.resolve(t)
	if err != nil {
		writeErr(w, err)
		return
	}
	b := []byte(`{"name":`)
	b = appendString(b, sv.Name)
	b = append(b, `,"versions":[`...)
	backends, _ := s.backends(t.model)
	seen := map[int64]bool{}
	first := true
	for _, be := range backends {
		for _, st := range be.Manager.Snapshot().Statuses {
			if st.State != modelrepo.StateAvailable || seen[st.Version] {
				continue
			}
			seen[st.Version] = true
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = strconv.AppendInt(b, st.Version, 10)
			b = append(b, '"')
		}
	}
	b = append(b, `],"platform":"`+platformONNX+`","inputs":`...)
	b = appendV2Specs(b, sv.Model.Inputs())
	b = append(b, `,"outputs":`...)
	b = appendV2Specs(b, sv.Model.Outputs())
	writeJSON(w, http.StatusOK, append(b, '}'))
}

func appendV2Specs(b []byte, specs []modelruntime.TensorSpec) []byte {
	b = append(b, '[')
	for i, s := range specs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, s.Name)
		b = append(b, `,"datatype":"`...)
		b = append(b, s.DataType...)
		b = append(b, `","shape":`...)
		b = appendShape(b, s.Shape)
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendShape(b []byte, shape []int64) []byte {
	b = append(b, '[')
	for i, d := range shape {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, d, 10)
	}
	return append(b, ']')
}

type v2Request struct {
	id      *string
	inputs  map[string]modelruntime.Tensor
	outputs []string // requested output names, nil = all
}

func (s *Server) v2Infer(w http.ResponseWriter, r *http.Request, t target) {
	body, l, ok := s.readBody(w, r)
	defer l.release()
	if !ok {
		return
	}
	if _, ok := s.backends(t.model); !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Model with name %s does not exist.", t.model))
		return
	}
	sv, err := s.resolve(t)
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := l.chargeGeneric(body); err != nil {
		writeErr(w, err)
		return
	}
	req, err := parseV2Infer(body, sv.Model.Inputs(), sv.Model.Outputs())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	out, err := sv.Predict(r.Context(), req.inputs)
	if errors.Is(err, modelrepo.ErrUnloaded) {
		sv, out, err = s.predict(r.Context(), t, req.inputs)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := l.chargeResponse(out); err != nil {
		writeErr(w, err)
		return
	}
	b := []byte(`{"model_name":`)
	b = appendString(b, sv.Name)
	b = append(b, `,"model_version":"`...)
	b = strconv.AppendInt(b, sv.Version, 10)
	b = append(b, '"')
	if req.id != nil {
		b = append(b, `,"id":`...)
		b = appendString(b, *req.id)
	}
	b = append(b, `,"outputs":[`...)
	names := req.outputs
	if names == nil {
		for _, o := range sv.Model.Outputs() {
			names = append(names, o.Name)
		}
	}
	for i, name := range names {
		if i > 0 {
			b = append(b, ',')
		}
		o := out[name]
		b = append(b, `{"name":`...)
		b = appendString(b, name)
		b = append(b, `,"datatype":"`...)
		b = append(b, o.DataType...)
		b = append(b, `","shape":`...)
		b = appendShape(b, o.Shape)
		b = append(b, `,"data":`...)
		b = appendFlatStrict(b, o.Data)
		b = append(b, '}')
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

// parseV2Infer decodes an inference request against the model's inputs and outputs. Errors
// name the field path (inputs[1].shape) and, for data, the input and element index.
func parseV2Infer(body []byte, inSpecs, outSpecs []modelruntime.TensorSpec) (*v2Request, error) {
	doc, err := parseJSON(body)
	if err != nil {
		return nil, err
	}
	if doc.kind != kObject {
		return nil, fmt.Errorf("request body must be a JSON object, found a %s", doc.kind)
	}
	req := &v2Request{inputs: map[string]modelruntime.Tensor{}}
	var inputs *value
	for _, m := range doc.obj {
		switch m.key {
		case "id":
			if m.val.kind != kString {
				return nil, fmt.Errorf("id: must be a string, found a %s", m.val.kind)
			}
			id := m.val.s
			req.id = &id
		case "parameters":
			if m.val.kind != kObject {
				return nil, fmt.Errorf("parameters: must be an object, found a %s", m.val.kind)
			}
		case "inputs":
			inputs = m.val
		case "outputs":
			if m.val.kind != kArray {
				return nil, fmt.Errorf("outputs: must be a list, found a %s", m.val.kind)
			}
			req.outputs = []string{}
			for i, o := range m.val.arr {
				name := o.get("name")
				if o.kind != kObject || name == nil || name.kind != kString {
					return nil, fmt.Errorf("outputs[%d].name: must be a string", i)
				}
				if !hasInput(outSpecs, name.s) {
					return nil, fmt.Errorf("outputs[%d].name: %q is not an output of the model (outputs: %s)", i, name.s, inputNames(outSpecs))
				}
				req.outputs = append(req.outputs, name.s)
			}
		default:
			return nil, fmt.Errorf("unknown request field %q", m.key)
		}
	}
	if inputs == nil || inputs.kind != kArray {
		return nil, errors.New("inputs: must be a list of tensors")
	}
	for i, in := range inputs.arr {
		if in.kind != kObject {
			return nil, fmt.Errorf("inputs[%d]: must be an object, found a %s", i, in.kind)
		}
		name, shapeV, dtV, data := in.get("name"), in.get("shape"), in.get("datatype"), in.get("data")
		if name == nil || name.kind != kString {
			return nil, fmt.Errorf("inputs[%d].name: must be a string", i)
		}
		var spec *modelruntime.TensorSpec
		for j := range inSpecs {
			if inSpecs[j].Name == name.s {
				spec = &inSpecs[j]
			}
		}
		if spec == nil {
			return nil, fmt.Errorf("inputs[%d].name: %q is not an input of the model (inputs: %s)", i, name.s, inputNames(inSpecs))
		}
		if _, dup := req.inputs[name.s]; dup {
			return nil, fmt.Errorf("inputs[%d].name: input %q given twice", i, name.s)
		}
		if dtV == nil || dtV.kind != kString || !modelruntime.DataType(dtV.s).Valid() {
			return nil, fmt.Errorf("inputs[%d].datatype: must be one of BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64, BYTES", i)
		}
		if dt := modelruntime.DataType(dtV.s); dt != spec.DataType {
			return nil, fmt.Errorf("inputs[%d].datatype: input %q expects %s, got %s", i, name.s, spec.DataType, dt)
		}
		if shapeV == nil || shapeV.kind != kArray {
			return nil, fmt.Errorf("inputs[%d].shape: must be a list of non-negative integers", i)
		}
		shape := make([]int64, len(shapeV.arr))
		for j, d := range shapeV.arr {
			v, err := strconv.ParseInt(d.s, 10, 64)
			if d.kind != kNumber || err != nil || v < 0 {
				return nil, fmt.Errorf("inputs[%d].shape[%d]: must be a non-negative integer", i, j)
			}
			shape[j] = v
		}
		if data == nil || data.kind != kArray {
			return nil, fmt.Errorf("inputs[%d].data: must be a list", i)
		}
		want := modelruntime.NumElements(shape)
		var leaves []*value
		path := fmt.Sprintf("inputs[%d].data", i)
		if len(data.arr) > 0 && data.arr[0].kind == kArray {
			if leaves, err = collect(data, shape, nil, path); err != nil {
				return nil, fmt.Errorf("%w (nested data must match shape %s)", err, modelruntime.FormatShape(shape))
			}
		} else {
			for j, el := range data.arr {
				if el.kind == kArray {
					return nil, fmt.Errorf("%s[%d]: flat data must hold scalars, found a list (ragged tensor)", path, j)
				}
			}
			leaves = data.arr
		}
		if int64(len(leaves)) != want {
			return nil, fmt.Errorf("%s: has %d elements, shape %s needs %d", path, len(leaves), modelruntime.FormatShape(shape), want)
		}
		vals, err := convert(spec.DataType, leaves, name.s)
		if err != nil {
			return nil, err
		}
		req.inputs[name.s] = modelruntime.Tensor{DataType: spec.DataType, Shape: shape, Data: vals}
	}
	return req, nil
}
