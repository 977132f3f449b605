package trainer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
)

// checkpointIndex is the modelDir/checkpoint file: the latest checkpoint.
type checkpointIndex struct {
	Step  int64  `json:"step"`
	Steps int64  `json:"steps"`
	File  string `json:"file"`
	Final bool   `json:"final"`
}

const (
	indexFile       = "checkpoint"
	checkpointMagic = "SLUICEMLP1"
)

// writeAtomic writes data to path through a temporary file and a rename,
// so readers never see a partial file.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// saveCheckpoint writes params as modelDir/ckpt-<step>.bin (magic, step,
// count, little-endian float32s) and points modelDir/checkpoint at it.
func saveCheckpoint(dir string, step, steps int64, params []float32, final bool) error {
	buf := make([]byte, 0, len(checkpointMagic)+16+4*len(params))
	buf = append(buf, checkpointMagic...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(step))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(params)))
	for _, p := range params {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(p))
	}
	name := fmt.Sprintf("ckpt-%d.bin", step)
	if err := writeAtomic(filepath.Join(dir, name), buf); err != nil {
		return fmt.Errorf("trainer: write checkpoint: %w", err)
	}
	idx, _ := json.Marshal(checkpointIndex{Step: step, Steps: steps, File: name, Final: final})
	if err := writeAtomic(filepath.Join(dir, indexFile), idx); err != nil {
		return fmt.Errorf("trainer: write checkpoint index: %w", err)
	}
	return nil
}

// latestCheckpoint reads the checkpoint index; ok is false when there is none.
func latestCheckpoint(dir string) (idx checkpointIndex, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return idx, false, nil
	}
	if err != nil {
		return idx, false, err
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return idx, false, fmt.Errorf("trainer: checkpoint index: %w", err)
	}
	return idx, true, nil
}

// loadCheckpoint reads the parameters of a checkpoint file.
func loadCheckpoint(dir string, idx checkpointIndex) ([]float32, error) {
	b, err := os.ReadFile(filepath.Join(dir, idx.File))
	if err != nil {
		return nil, fmt.Errorf("trainer: read checkpoint: %w", err)
	}
	h := len(checkpointMagic) + 16
	if len(b) < h || string(b[:len(checkpointMagic)]) != checkpointMagic {
		return nil, fmt.Errorf("trainer: %s is not a checkpoint", idx.File)
	}
	n := binary.LittleEndian.Uint64(b[len(checkpointMagic)+8:])
	if uint64(len(b)-h) != 4*n {
		return nil, fmt.Errorf("trainer: %s is truncated", idx.File)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[h+4*i:]))
	}
	return out, nil
}
