package tfevents_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sluice-ml/sluice/libs/tfevents"
)

// readHex decodes testdata/*.hex: hex bytes separated by spaces, '#' comments.
func readHex(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	var digits strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	require.NoError(t, err)
	return b
}

// refCRC32C is CRC-32C from its definition: reflected polynomial 0x82F63B78, initial value and final
// XOR 0xFFFFFFFF, one bit at a time.
func refCRC32C(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c ^= uint32(x)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ 0x82F63B78
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

func TestMaskedCRC32C(t *testing.T) {
	// RFC 3720 appendix B.4 check values anchor the reference implementation.
	require.Equal(t, uint32(0x8A9136AA), refCRC32C(make([]byte, 32)))
	require.Equal(t, uint32(0xE3069283), refCRC32C([]byte("123456789")))
	for _, in := range [][]byte{nil, []byte("123456789"), make([]byte, 32), bytes.Repeat([]byte{0xff}, 100)} {
		c := refCRC32C(in)
		require.Equal(t, ((c>>15)|(c<<17))+0xa282ead8, tfevents.MaskedCRC32C(in))
	}
}

// The writer produces the hand-derived bytes exactly.
func TestWriterGolden(t *testing.T) {
	golden := readHex(t, "writer.hex")
	var buf bytes.Buffer
	clock := time.Unix(1, 5e8) // wall_time 1.5 for the file_version record
	w, err := tfevents.NewWriter(&buf, tfevents.WithClock(func() time.Time { return clock }))
	require.NoError(t, err)
	require.NoError(t, w.AddScalar("loss", 3, 0.25, time.Unix(2, 0)))
	require.NoError(t, w.AddSimpleValue("acc", 4, 0.5, time.Unix(2, 0)))
	require.NoError(t, w.Flush())
	require.Equal(t, hex.Dump(golden), hex.Dump(buf.Bytes()))
}

// The reader finds the three records and both scalars in the hand-derived bytes, in TensorFlow's field
// order and in the writer's.
func TestParseGolden(t *testing.T) {
	for _, name := range []string{"golden.hex", "writer.hex"} {
		t.Run(name, func(t *testing.T) { testParseGolden(t, name) })
	}
}

func testParseGolden(t *testing.T, name string) {
	golden := readHex(t, name)
	recs, n, bad := tfevents.ParseRecords(golden, 0)
	require.Empty(t, bad)
	require.Equal(t, len(golden), n)
	require.Len(t, recs, 3)
	require.Equal(t, []int64{0, 40, 104}, []int64{recs[0].Offset, recs[1].Offset, recs[2].Offset})

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(dir+"/events.out.tfevents.1.host", golden, 0o644))
	l := tfevents.NewLogdir(tfevents.Dir(dir))
	require.NoError(t, l.Reload(t.Context()))
	require.Equal(t, []string{"."}, l.Runs())
	loss, ok := l.Scalars(".", "loss")
	require.True(t, ok)
	require.Equal(t, []tfevents.ScalarPoint{{WallTime: 2, Step: 3, Value: 0.25}}, loss)
	acc, ok := l.Scalars(".", "acc")
	require.True(t, ok)
	require.Equal(t, []tfevents.ScalarPoint{{WallTime: 2, Step: 4, Value: 0.5}}, acc)
	require.Empty(t, l.Corruptions())
}
