package dataplane

import (
	"testing"

	"github.com/sluice-ml/sluice/services/serving/internal/modelruntime"
)

var fuzzSpecs = []modelruntime.TensorSpec{
	{Name: "a", DataType: modelruntime.FP32, Shape: []int64{-1, 2}},
	{Name: "b", DataType: modelruntime.Bytes, Shape: []int64{-1}},
}

var fuzzSeeds = []string{
	`{"instances":[{"a":[1,2],"b":{"b64":"aGk="}}]}`,
	`{"inputs":{"a":[[1,2]],"b":["x"]}}`,
	`{"signature_name":"serving_default","instances":[]}`,
	`{"instances":[{"a":[NaN,-Infinity],"b":"\u00e9\ud83d\ude00"}]}`,
	`{"inputs":[{"name":"a","shape":[1,2],"datatype":"FP32","data":[[1,2]]},{"name":"b","shape":[1],"datatype":"BYTES","data":["x"]}],"outputs":[{"name":"a"}]}`,
	`[[[[[[`, `{"instances":[[1,2],[3]]}`, `1e999`, `{"inputs":{"a":[[1,2]],"b":[{"b64":"***"}]}}`,
}

// FuzzParseTFPredict checks the TF Serving request parser never panics and that accepted
// requests produce tensors whose data matches their shape.
func FuzzParseTFPredict(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, specs := range [][]modelruntime.TensorSpec{fuzzSpecs, fuzzSpecs[:1]} {
			req, err := parseTFPredict(body, specs)
			if err != nil {
				continue
			}
			for name, tensor := range req.inputs {
				if int64(modelruntime.DataLen(tensor.Data)) != modelruntime.NumElements(tensor.Shape) {
					t.Fatalf("input %q: %d elements for shape %v", name, modelruntime.DataLen(tensor.Data), tensor.Shape)
				}
			}
		}
	})
}

// FuzzParseV2Infer checks the KServe v2 request parser the same way.
func FuzzParseV2Infer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseV2Infer(body, fuzzSpecs, fuzzSpecs)
		if err != nil {
			return
		}
		for name, tensor := range req.inputs {
			if int64(modelruntime.DataLen(tensor.Data)) != modelruntime.NumElements(tensor.Shape) {
				t.Fatalf("input %q: %d elements for shape %v", name, modelruntime.DataLen(tensor.Data), tensor.Shape)
			}
		}
	})
}
