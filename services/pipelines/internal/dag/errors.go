package dag

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// FieldError is one problem in a spec, located by its field path in the
// source document (e.g. `root.dag.tasks.join.inputs.parameters.text1`).
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// FieldErrors is every problem found in a spec, sorted by path then message.
// Its Error lists them one per line. Match it with errors.As.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// ErrInvalidSpec is wrapped by every error a parser or [Compile] returns for
// a bad spec, so callers can map it to HTTP 400 / exit code 2 with errors.Is.
var ErrInvalidSpec = errors.New("dag: invalid pipeline spec")

// Is reports target == ErrInvalidSpec.
func (es FieldErrors) Is(target error) bool { return target == ErrInvalidSpec }

// AsFieldErrors returns the field errors carried by err (nil if none).
func AsFieldErrors(err error) FieldErrors {
	var fe FieldErrors
	if errors.As(err, &fe) {
		return fe
	}
	return nil
}

// errorList collects problems while compiling.
type errorList struct{ errs FieldErrors }

func (l *errorList) add(path, format string, args ...any) {
	l.errs = append(l.errs, FieldError{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (l *errorList) err() error {
	if len(l.errs) == 0 {
		return nil
	}
	sort.SliceStable(l.errs, func(i, j int) bool {
		if l.errs[i].Path != l.errs[j].Path {
			return l.errs[i].Path < l.errs[j].Path
		}
		return l.errs[i].Message < l.errs[j].Message
	})
	out := l.errs[:0]
	for i, e := range l.errs {
		if i > 0 && e == l.errs[i-1] {
			continue
		}
		out = append(out, e)
	}
	return out
}
