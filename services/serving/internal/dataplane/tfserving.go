package dataplane

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/sluice-ml/sluice/services/serving/internal/modelrepo"
	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

// TF Serving REST API (tensorflow_serving/model_servers/http_rest_api_handler.cc):
//   GET  /v1/models/{name}[/versions/{n} | /labels/{label}]
//   GET  /v1/models/{name}[/versions/{n} | /labels/{label}]/metadata
//   POST /v1/models/{name}[/versions/{n} | /labels/{label}]:predict

const defaultSignature = "serving_default"

// serveTF handles the segments after /v1/models.
func (s *Server) serveTF(w http.ResponseWriter, r *http.Request, segs []string) {
	malformed := "Malformed request: " + r.Method + " " + r.URL.Path
	if len(segs) == 0 {
		writeError(w, http.StatusBadRequest, "Missing model name in request.")
		return
	}
	var verb string
	last := segs[len(segs)-1]
	if i := strings.LastIndexByte(last, ':'); i >= 0 {
		verb = last[i+1:]
		segs = append(segs[:len(segs)-1:len(segs)-1], last[:i])
	}
	if segs[0] == "" {
		writeError(w, http.StatusBadRequest, "Missing model name in request.")
		return
	}
	t := target{model: segs[0]}
	rest := segs[1:]
	metadata := false
	for len(rest) > 0 {
		switch {
		case len(rest) >= 2 && eqFold(rest[0], "versions"):
			if t.hasVer {
				writeError(w, http.StatusBadRequest, "Malformed request: version specified more than once")
				return
			}
			v, err := strconv.ParseInt(rest[1], 10, 64)
			if err != nil || v < 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("Malformed request: version %q is not a non-negative integer", rest[1]))
				return
			}
			t.version, t.hasVer = v, true
			rest = rest[2:]
		case len(rest) >= 2 && eqFold(rest[0], "labels"):
			if t.label != "" {
				writeError(w, http.StatusBadRequest, "Malformed request: label specified more than once")
				return
			}
			t.label = rest[1]
			rest = rest[2:]
		case len(rest) == 1 && eqFold(rest[0], "metadata") && verb == "":
			metadata = true
			rest = nil
		default:
			writeError(w, http.StatusBadRequest, malformed)
			return
		}
	}
	if t.hasVer && t.label != "" {
		writeError(w, http.StatusBadRequest, "Malformed request: both version and label are specified")
		return
	}
	switch {
	case verb == "" && r.Method == http.MethodGet && metadata:
		s.tfMetadata(w, t)
	case verb == "" && r.Method == http.MethodGet:
		s.tfStatus(w, t)
	case verb == "predict" && r.Method == http.MethodPost:
		s.tfPredict(w, r, t)
	case (verb == "classify" || verb == "regress") && r.Method == http.MethodPost:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s is not supported by this model: it has no %s signature", verb, verb))
	default:
		// Unknown verbs, GET with a verb, POST without one: TF Serving's INVALID_ARGUMENT.
		writeError(w, http.StatusBadRequest, malformed)
	}
}

// tfStatus writes GetModelStatusResponse JSON.
func (s *Server) tfStatus(w http.ResponseWriter, t target) {
	statuses, err := s.versionStatuses(t)
	if err != nil {
		writeErr(w, err)
		return
	}
	b := []byte(`{"model_version_status":[`)
	for i, st := range statuses {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"version":"`...)
		b = strconv.AppendInt(b, st.Version, 10)
		b = append(b, `","state":"`...)
		b = append(b, st.State...)
		b = append(b, `","status":{"error_code":"`...)
		b = append(b, st.ErrorCode...)
		b = append(b, `","error_message":`...)
		b = appendString(b, st.ErrorMessage)
		b = append(b, "}}"...)
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}

// versionStatuses is GetModelStatus: the statuses of every version of t's model (or of its
// version or label), highest first. An unknown model or version is NOT_FOUND, an unknown label
// INVALID_ARGUMENT.
func (s *Server) versionStatuses(t target) ([]modelrepo.VersionStatus, error) {
	backends, ok := s.backends(t.model)
	if !ok {
		return nil, statusf(codes.NotFound, "Could not find any versions of model %s", t.model)
	}
	var statuses []modelrepo.VersionStatus
	seen := map[*modelrepo.Manager]bool{}
	for _, b := range backends {
		if seen[b.Manager] {
			continue
		}
		seen[b.Manager] = true
		snap := b.Manager.Snapshot()
		switch {
		case t.hasVer:
			if st, ok := snap.Status(t.version); ok {
				statuses = append(statuses, st)
			}
		case t.label != "":
			if v, ok := snap.Labels[t.label]; ok {
				if st, ok := snap.Status(v); ok {
					statuses = append(statuses, st)
				}
			}
		default:
			statuses = append(statuses, snap.Statuses...)
		}
	}
	if len(statuses) == 0 {
		switch {
		case t.hasVer:
			return nil, statusf(codes.NotFound, "Could not find version %d of model %s", t.version, t.model)
		case t.label != "":
			return nil, statusf(codes.InvalidArgument, "Unrecognized servable version label: %s", t.label)
		default:
			return nil, statusf(codes.NotFound, "Could not find any versions of model %s", t.model)
		}
	}
	return statuses, nil
}

// tfMetadata writes GetModelMetadataResponse JSON with the serving_default signature.
func (s *Server) tfMetadata(w http.ResponseWriter, t target) {
	sv, err := s.resolve(t)
	if err != nil {
		writeErr(w, err)
		return
	}
	b := []byte(`{"model_spec":{"name":`)
	b = appendString(b, sv.Name)
	b = append(b, `,"signature_name":"","version":"`...)
	b = strconv.AppendInt(b, sv.Version, 10)
	b = append(b, `"},"metadata":{"signature_def":{"signature_def":{"serving_default":{"inputs":`...)
	b = appendTensorInfos(b, sv.Model.Inputs())
	b = append(b, `,"outputs":`...)
	b = appendTensorInfos(b, sv.Model.Outputs())
	b = append(b, `,"method_name":"tensorflow/serving/predict"}}}}}`...)
	writeJSON(w, http.StatusOK, b)
}

func appendTensorInfos(b []byte, specs []modelruntime.TensorSpec) []byte {
	b = append(b, '{')
	for i, s := range specs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s.Name)
		b = append(b, `:{"dtype":"`...)
		b = append(b, s.DataType.TFName()...)
		b = append(b, `","tensor_shape":{"dim":[`...)
		for j, d := range s.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"size":"`...)
			b = strconv.AppendInt(b, d, 10)
			b = append(b, `","name":""}`...)
		}
		b = append(b, `],"unknown_rank":false},"name":`...)
		b = appendString(b, s.Name)
		b = append(b, '}')
	}
	return append(b, '}')
}

// tfPredict handles :predict in row (instances) or columnar (inputs) format.
func (s *Server) tfPredict(w http.ResponseWriter, r *http.Request, t target) {
	body, l, ok := s.readBody(w, r)
	defer l.release()
	if !ok {
		return
	}
	defer putBody(body) // both decoders copy what they keep
	// Resolve first for the input signature; predict re-resolves only if the version is
	// unloaded in between.
	sv, err := s.resolve(t)
	if err != nil {
		writeErr(w, err)
		return
	}
	if err := l.chargeFast(body); err != nil {
		writeErr(w, err)
		return
	}
	req, ok := fastTFPredict(body, sv.Model.Inputs())
	if !ok {
		if err := l.chargeGeneric(body); err != nil {
			writeErr(w, err)
			return
		}
		req, err = parseTFPredict(body, sv.Model.Inputs())
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	row, rows := req.row, req.rows
	if req.row {
		if err := rowOutputsBatched(sv.Model.Inputs(), sv.Model.Outputs()); err != nil {
			writeErr(w, err)
			return
		}
	}
	out, err := sv.Predict(r.Context(), req.inputs)
	if errors.Is(err, modelrepo.ErrUnloaded) {
		sv, out, err = s.predict(r.Context(), t, req.inputs)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	defer req.recycle() // after the response is written: an output may share an input's memory
	if err := l.chargeResponse(out); err != nil {
		writeErr(w, err)
		return
	}
	resp, err := encodeTFPredict(row, rows, sv.Model.Outputs(), out)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

type tfPredictRequest struct {
	row bool
	// rows is the number of instances of a row-format request.
	rows   int64
	inputs map[string]modelruntime.Tensor
	// pooled is the element slice (full capacity) of an FP32 input from float32Pool
	// (fastTFPredict), or nil.
	pooled []float32
}

// recycle returns the request's pooled element slice to float32Pool. Call it only once nothing
// refers to it any more, not even an output that might share an input's memory: after the
// response is written.
func (r *tfPredictRequest) recycle() {
	if cap(r.pooled) > 0 {
		s := r.pooled[:0]
		r.pooled = nil
		float32Pool.Put(&s)
	}
}

// rowOutputsBatched refuses the row format for a model with an output whose declared shape has
// no batch dimension (a scalar, or a fixed first dimension while the inputs' first dimension is
// variable): its values cannot be split into one prediction per instance.
func rowOutputsBatched(in, out []modelruntime.TensorSpec) error {
	batched := false
	for _, s := range in {
		if len(s.Shape) > 0 && s.Shape[0] < 0 {
			batched = true
		}
	}
	for _, s := range out {
		if s.UnknownRank {
			continue
		}
		if len(s.Shape) == 0 {
			return statusf(codes.InvalidArgument, "output %q is a scalar (no batch dimension), so it cannot be returned in the row format (\"instances\"); use the columnar format (\"inputs\")", s.Name)
		}
		if batched && s.Shape[0] >= 0 {
			return statusf(codes.InvalidArgument, "output %q has shape %s without a batch dimension, so it cannot be returned in the row format (\"instances\"); use the columnar format (\"inputs\")", s.Name, modelruntime.FormatShape(s.Shape))
		}
	}
	return nil
}

// parseTFPredict decodes a PredictRequest body against the model's inputs. Errors are client
// errors (400) naming the request field, the input and the element index.
func parseTFPredict(body []byte, specs []modelruntime.TensorSpec) (*tfPredictRequest, error) {
	doc, err := parseJSON(body)
	if err != nil {
		return nil, err
	}
	if doc.kind != kObject {
		return nil, fmt.Errorf("request body must be a JSON object, found a %s", doc.kind)
	}
	var instances, inputs *value
	for _, m := range doc.obj {
		switch m.key {
		case "signature_name":
			if m.val.kind != kString {
				return nil, fmt.Errorf(`"signature_name" must be a string, found a %s`, m.val.kind)
			}
			if m.val.s != "" && m.val.s != defaultSignature {
				return nil, fmt.Errorf("Serving signature name: %q not found in signature def", m.val.s)
			}
		case "instances":
			instances = m.val
		case "inputs":
			inputs = m.val
		default:
			return nil, fmt.Errorf("unknown request field %q (expected signature_name and one of instances or inputs)", m.key)
		}
	}
	switch {
	case instances != nil && inputs != nil:
		return nil, fmt.Errorf(`request must contain exactly one of "instances" (row format) or "inputs" (columnar format), found both`)
	case instances == nil && inputs == nil:
		return nil, fmt.Errorf(`request must contain exactly one of "instances" (row format) or "inputs" (columnar format), found neither`)
	case instances != nil:
		in, err := parseInstances(instances, specs)
		return &tfPredictRequest{row: true, rows: int64(len(instances.arr)), inputs: in}, err
	default:
		in, err := parseColumnar(inputs, specs)
		return &tfPredictRequest{inputs: in}, err
	}
}

func parseInstances(v *value, specs []modelruntime.TensorSpec) (map[string]modelruntime.Tensor, error) {
	if v.kind != kArray {
		return nil, fmt.Errorf(`"instances" must be a list, found a %s`, v.kind)
	}
	n := int64(len(v.arr))
	named := n > 0 && v.arr[0].kind == kObject && !isB64(v.arr[0])
	out := make(map[string]modelruntime.Tensor, len(specs))
	if !named {
		if len(specs) != 1 {
			return nil, fmt.Errorf("instances: the model has %d inputs, so each instance must be an object keyed by input name", len(specs))
		}
		for i, el := range v.arr {
			if el.kind == kObject && !isB64(el) {
				return nil, fmt.Errorf("instances[%d]: is an object but instances[0] is not; all instances must have the same form", i)
			}
		}
		spec := specs[0]
		rowShape := rowShapeOf(v, spec)
		t, err := tensorFromValue(v, append([]int64{n}, rowShape...), spec, "instances")
		if err != nil {
			return nil, err
		}
		out[spec.Name] = t
		return out, nil
	}
	for i, el := range v.arr {
		if el.kind != kObject || isB64(el) {
			return nil, fmt.Errorf("instances[%d]: expected an object keyed by input name like instances[0], found a %s", i, el.kind)
		}
		for _, m := range el.obj {
			if !hasInput(specs, m.key) {
				return nil, fmt.Errorf("instances[%d]: %q is not an input of the model (inputs: %s)", i, m.key, inputNames(specs))
			}
		}
	}
	for _, spec := range specs {
		rows := &value{kind: kArray, arr: make([]*value, n)}
		for i, el := range v.arr {
			x := el.get(spec.Name)
			if x == nil {
				return nil, fmt.Errorf("instances[%d]: missing input %q", i, spec.Name)
			}
			rows.arr[i] = x
		}
		rowShape := shapeOf(rows.arr[0])
		var leaves []*value
		var err error
		for i, x := range rows.arr {
			if leaves, err = collect(x, rowShape, leaves, fmt.Sprintf("instances[%d].%s", i, spec.Name)); err != nil {
				return nil, err
			}
		}
		data, err := convert(spec.DataType, leaves, spec.Name)
		if err != nil {
			return nil, err
		}
		out[spec.Name] = modelruntime.Tensor{DataType: spec.DataType, Shape: append([]int64{n}, rowShape...), Data: data}
	}
	return out, nil
}

// rowShapeOf is the per-row shape of a list of rows: from the first row, or for zero rows
// from the model's declared shape (variable dims as 0).
func rowShapeOf(rows *value, spec modelruntime.TensorSpec) []int64 {
	if len(rows.arr) > 0 {
		return shapeOf(rows.arr[0])
	}
	var shape []int64
	if len(spec.Shape) > 1 {
		for _, d := range spec.Shape[1:] {
			shape = append(shape, max(d, 0))
		}
	}
	return shape
}

func parseColumnar(v *value, specs []modelruntime.TensorSpec) (map[string]modelruntime.Tensor, error) {
	out := make(map[string]modelruntime.Tensor, len(specs))
	if v.kind == kObject && !isB64(v) {
		for _, m := range v.obj {
			if !hasInput(specs, m.key) {
				return nil, fmt.Errorf("inputs: %q is not an input of the model (inputs: %s)", m.key, inputNames(specs))
			}
		}
		for _, spec := range specs {
			x := v.get(spec.Name)
			if x == nil {
				return nil, fmt.Errorf("inputs: missing input %q", spec.Name)
			}
			shape := shapeOf(x)
			if x.kind == kArray && len(x.arr) == 0 {
				shape = append([]int64{0}, rowShapeOf(x, spec)...)
			}
			t, err := tensorFromValue(x, shape, spec, "inputs."+spec.Name)
			if err != nil {
				return nil, err
			}
			out[spec.Name] = t
		}
		return out, nil
	}
	if len(specs) != 1 {
		return nil, fmt.Errorf("inputs: the model has %d inputs, so \"inputs\" must be an object keyed by input name", len(specs))
	}
	spec := specs[0]
	shape := shapeOf(v)
	if v.kind == kArray && len(v.arr) == 0 {
		shape = append([]int64{0}, rowShapeOf(v, spec)...)
	}
	t, err := tensorFromValue(v, shape, spec, "inputs")
	if err != nil {
		return nil, err
	}
	out[spec.Name] = t
	return out, nil
}

func tensorFromValue(v *value, shape []int64, spec modelruntime.TensorSpec, path string) (modelruntime.Tensor, error) {
	var leaves []*value
	var err error
	if modelruntime.NumElements(shape) > 0 || len(shape) == 0 {
		if leaves, err = collect(v, shape, nil, path); err != nil {
			return modelruntime.Tensor{}, err
		}
	}
	data, err := convert(spec.DataType, leaves, spec.Name)
	if err != nil {
		return modelruntime.Tensor{}, err
	}
	return modelruntime.Tensor{DataType: spec.DataType, Shape: shape, Data: data}, nil
}

func hasInput(specs []modelruntime.TensorSpec, name string) bool {
	for _, s := range specs {
		if s.Name == name {
			return true
		}
	}
	return false
}

func inputNames(specs []modelruntime.TensorSpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = strconv.Quote(s.Name)
	}
	return strings.Join(names, ", ")
}

// encodeTFPredict writes {"predictions": ...} (row, rows instances) or {"outputs": ...}
// (columnar). In the row format every output's first dimension must be the batch size: an
// output without one, or outputs disagreeing on it, are INVALID_ARGUMENT naming the columnar
// format.
func encodeTFPredict(row bool, rows int64, specs []modelruntime.TensorSpec, out map[string]modelruntime.Tensor) ([]byte, error) {
	// Pre-size for the common case (numbers of up to ~16 bytes each plus separators).
	size := 64
	for _, s := range specs {
		size += len(s.Name) + 16 + responseTextBytes*modelruntime.DataLen(out[s.Name].Data)
	}
	if !row {
		b := append(make([]byte, 0, size), `{"outputs":`...)
		if len(specs) == 1 {
			t := out[specs[0].Name]
			b = appendNested(b, t.Data, 0, t.Shape, isBytesName(specs[0].Name))
		} else {
			b = append(b, '{')
			for i, s := range specs {
				if i > 0 {
					b = append(b, ',')
				}
				t := out[s.Name]
				b = appendString(b, s.Name)
				b = append(b, ':')
				b = appendNested(b, t.Data, 0, t.Shape, isBytesName(s.Name))
			}
			b = append(b, '}')
		}
		return append(b, '}'), nil
	}
	var n int64 = -1
	for _, s := range specs {
		t := out[s.Name]
		if len(t.Shape) == 0 {
			return nil, statusf(codes.InvalidArgument, "output %q is a scalar (no batch dimension), so it cannot be returned in the row format (\"instances\"); use the columnar format (\"inputs\")", s.Name)
		}
		if n >= 0 && t.Shape[0] != n {
			return nil, statusf(codes.InvalidArgument, "outputs have different batch sizes (%d, and %d for %q), so they cannot be returned in the row format (\"instances\"); use the columnar format (\"inputs\")", n, t.Shape[0], s.Name)
		}
		if t.Shape[0] != rows {
			return nil, statusf(codes.InvalidArgument, "output %q has %d rows for %d instances (no batch dimension), so it cannot be returned in the row format (\"instances\"); use the columnar format (\"inputs\")", s.Name, t.Shape[0], rows)
		}
		n = t.Shape[0]
	}
	b := append(make([]byte, 0, size), `{"predictions":[`...)
	for i := range max(n, 0) {
		if i > 0 {
			b = append(b, ',')
		}
		if len(specs) == 1 {
			t := out[specs[0].Name]
			stride := int(modelruntime.NumElements(t.Shape[1:]))
			b = appendNested(b, t.Data, int(i)*stride, t.Shape[1:], isBytesName(specs[0].Name))
			continue
		}
		b = append(b, '{')
		for j, s := range specs {
			if j > 0 {
				b = append(b, ',')
			}
			t := out[s.Name]
			stride := int(modelruntime.NumElements(t.Shape[1:]))
			b = appendString(b, s.Name)
			b = append(b, ':')
			b = appendNested(b, t.Data, int(i)*stride, t.Shape[1:], isBytesName(s.Name))
		}
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}

// isBytesName: TF Serving returns outputs whose name ends in "_bytes" as {"b64": ...}.
func isBytesName(name string) bool { return strings.HasSuffix(name, "_bytes") }
