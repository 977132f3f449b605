package jobspec

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalid matches (with errors.Is) every *InvalidError.
var ErrInvalid = errors.New("jobspec: invalid job")

// FieldError is one problem in a job document. Field is the path of the
// offending field, e.g. "spec.tfReplicaSpecs.Worker.replicas"; it is empty
// when the document as a whole cannot be read (YAML syntax).
type FieldError struct {
	Field  string `json:"field,omitempty"`
	Detail string `json:"detail"`
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Detail
	}
	return e.Field + ": " + e.Detail
}

// InvalidError lists every problem found in a job document. Nothing may be
// created for a job that fails with it.
type InvalidError struct {
	Kind   string       `json:"kind,omitempty"`
	Name   string       `json:"name,omitempty"`
	Errors []FieldError `json:"errors"`
}

func (e *InvalidError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	if e.Kind != "" {
		b.WriteString(e.Kind)
	} else {
		b.WriteString("job")
	}
	if e.Name != "" {
		b.WriteString(" " + strconv.Quote(e.Name))
	}
	b.WriteString(": ")
	for i, fe := range e.Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// problems accumulates FieldErrors.
type problems []FieldError

func (p *problems) add(field, detail string) {
	*p = append(*p, FieldError{Field: field, Detail: detail})
}

func (p problems) err(kind, name string) error {
	if len(p) == 0 {
		return nil
	}
	return &InvalidError{Kind: kind, Name: name, Errors: p}
}
