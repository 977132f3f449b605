package tfevents

import (
	"encoding/binary"
	"math"

	"github.com/sluice-ml/sluice/libs/tfevents/tfeventspb"
)

// ScalarPoint is one point of a scalar series, as TensorBoard's scalars API returns it.
type ScalarPoint struct {
	// WallTime is seconds since the Unix epoch.
	WallTime float64
	Step     int64
	Value    float64
}

// ScalarValue returns the scalar v carries and true, or false when v is not a scalar. plugin is the plugin
// name recorded for v's tag (metadata is usually only on a tag's first value in a file); v's own metadata
// wins when present.
//
// Scalars are TF1 simple_value fields, and tensors of the "scalars" plugin (or DATA_CLASS_SCALAR) holding
// exactly one element of a floating-point or integer dtype, in the typed *_val field or in tensor_content
// (little endian), as TensorBoard's data compatibility layer accepts them.
func ScalarValue(v *tfeventspb.Summary_Value, plugin string) (float64, bool) {
	switch x := v.GetValue().(type) {
	case *tfeventspb.Summary_Value_SimpleValue:
		return float64(x.SimpleValue), true
	case *tfeventspb.Summary_Value_Tensor:
		if md := v.GetMetadata(); md != nil {
			plugin = md.GetPluginData().GetPluginName()
			if md.GetDataClass() == tfeventspb.DataClass_DATA_CLASS_SCALAR {
				plugin = ScalarsPlugin
			}
		}
		if plugin != ScalarsPlugin {
			return 0, false
		}
		return tensorScalar(x.Tensor)
	}
	return 0, false
}

// PluginOf returns the plugin named by v's metadata ("scalars" for DATA_CLASS_SCALAR), or "" without
// metadata.
func PluginOf(v *tfeventspb.Summary_Value) string {
	md := v.GetMetadata()
	if md == nil {
		return ""
	}
	if md.GetDataClass() == tfeventspb.DataClass_DATA_CLASS_SCALAR {
		return ScalarsPlugin
	}
	return md.GetPluginData().GetPluginName()
}

func tensorScalar(t *tfeventspb.TensorProto) (float64, bool) {
	n := int64(1)
	for _, d := range t.GetTensorShape().GetDim() {
		n *= d.GetSize()
	}
	if n != 1 {
		return 0, false
	}
	c := t.GetTensorContent()
	switch t.GetDtype() {
	case tfeventspb.DataType_DT_FLOAT:
		if len(c) == 4 {
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(c))), true
		}
		if len(t.GetFloatVal()) == 1 {
			return float64(t.GetFloatVal()[0]), true
		}
	case tfeventspb.DataType_DT_DOUBLE:
		if len(c) == 8 {
			return math.Float64frombits(binary.LittleEndian.Uint64(c)), true
		}
		if len(t.GetDoubleVal()) == 1 {
			return t.GetDoubleVal()[0], true
		}
	case tfeventspb.DataType_DT_HALF:
		if len(c) == 2 {
			return halfToFloat(binary.LittleEndian.Uint16(c)), true
		}
		if len(t.GetHalfVal()) == 1 {
			return halfToFloat(uint16(t.GetHalfVal()[0])), true
		}
	case tfeventspb.DataType_DT_INT32, tfeventspb.DataType_DT_INT16, tfeventspb.DataType_DT_INT8:
		if len(c) == 4 && t.GetDtype() == tfeventspb.DataType_DT_INT32 {
			return float64(int32(binary.LittleEndian.Uint32(c))), true
		}
		if len(t.GetIntVal()) == 1 {
			return float64(t.GetIntVal()[0]), true
		}
	case tfeventspb.DataType_DT_INT64:
		if len(c) == 8 {
			return float64(int64(binary.LittleEndian.Uint64(c))), true
		}
		if len(t.GetInt64Val()) == 1 {
			return float64(t.GetInt64Val()[0]), true
		}
	}
	return 0, false
}

// halfToFloat decodes an IEEE 754 binary16 value.
func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}
