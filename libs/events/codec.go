package events

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
)

// Event is a CloudEvents 1.0 event (the sdk's type).
type Event = cloudevents.Event

const (
	headerPrefix      = "ce-"
	headerContentType = "content-type"
)

var specV1 = spec.WithPrefix(headerPrefix).Version(cloudevents.VersionV1)

// New builds an event of the given type: id a fresh UUIDv7, time now (UTC), the given source (by
// convention "/sluice/<service>") and subject (the entity path, e.g. "runs/<id>"), and data encoded as
// application/json. data may be nil.
func New(source, eventType, subject string, data any) (Event, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("events: new id: %w", err)
	}
	ev := cloudevents.NewEvent()
	ev.SetID(id.String())
	ev.SetSource(source)
	ev.SetType(eventType)
	ev.SetTime(time.Now().UTC())
	if subject != "" {
		ev.SetSubject(subject)
	}
	if data != nil {
		if err := ev.SetData(cloudevents.ApplicationJSON, data); err != nil {
			return Event{}, fmt.Errorf("events: encode %s data: %w", eventType, err)
		}
	}
	if err := ev.Validate(); err != nil {
		return Event{}, fmt.Errorf("events: %w", err)
	}
	return ev, nil
}

// Encode writes ev in CloudEvents binary mode into a NATS message on subj: each attribute as a "ce-<name>"
// header (datacontenttype as "content-type"), the data as the body.
func Encode(ctx context.Context, ev *Event, subj string) (*nats.Msg, error) {
	w := &headerWriter{msg: nats.NewMsg(subj)}
	if _, err := binding.Write(ctx, binding.ToMessage(ev), nil, w); err != nil {
		return nil, fmt.Errorf("events: encode %s: %w", ev.ID(), err)
	}
	return w.msg, nil
}

// Decode reads a binary-mode CloudEvent from a NATS message's headers and body.
func Decode(ctx context.Context, h nats.Header, body []byte) (Event, error) {
	ev, err := binding.ToEvent(ctx, &headerMessage{h: h, body: body})
	if err != nil {
		return Event{}, fmt.Errorf("events: decode: %w", err)
	}
	if err := ev.Validate(); err != nil {
		return Event{}, fmt.Errorf("events: decode: %w", err)
	}
	return *ev, nil
}

type headerWriter struct{ msg *nats.Msg }

func (w *headerWriter) Start(context.Context) error { return nil }
func (w *headerWriter) End(context.Context) error   { return nil }

func (w *headerWriter) SetData(r io.Reader) error {
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		return err
	}
	w.msg.Data = b.Bytes()
	return nil
}

func (w *headerWriter) SetAttribute(a spec.Attribute, value any) error {
	name := headerPrefix + a.Name()
	if a.Kind() == spec.DataContentType {
		name = headerContentType
	}
	return w.set(name, value)
}

func (w *headerWriter) SetExtension(name string, value any) error {
	return w.set(headerPrefix+name, value)
}

func (w *headerWriter) set(name string, value any) error {
	if value == nil {
		w.msg.Header.Del(name)
		return nil
	}
	s, err := types.Format(value)
	if err != nil {
		return err
	}
	w.msg.Header.Set(name, s)
	return nil
}

type headerMessage struct {
	h    nats.Header
	body []byte
}

func (m *headerMessage) ReadEncoding() binding.Encoding {
	if m.h.Get(headerPrefix+"specversion") != "" {
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

func (m *headerMessage) ReadStructured(context.Context, binding.StructuredWriter) error {
	return binding.ErrNotStructured
}

func (m *headerMessage) ReadBinary(ctx context.Context, w binding.BinaryWriter) error {
	if m.ReadEncoding() != binding.EncodingBinary {
		return binding.ErrNotBinary
	}
	for name, vals := range m.h {
		if len(vals) == 0 {
			continue
		}
		lower := strings.ToLower(name)
		switch {
		case lower == headerContentType:
			if err := w.SetAttribute(specV1.AttributeFromKind(spec.DataContentType), vals[0]); err != nil {
				return err
			}
		case strings.HasPrefix(lower, headerPrefix):
			attr := strings.TrimPrefix(lower, headerPrefix)
			if a := specV1.Attribute(lower); a != nil {
				if err := w.SetAttribute(a, vals[0]); err != nil {
					return err
				}
			} else if err := w.SetExtension(attr, vals[0]); err != nil {
				return err
			}
		}
	}
	if len(m.body) > 0 {
		return w.SetData(bytes.NewReader(m.body))
	}
	return nil
}

func (m *headerMessage) Finish(error) error { return nil }

// GetAttribute implements binding.MessageMetadataReader.
func (m *headerMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	a := specV1.AttributeFromKind(k)
	if a == nil {
		return nil, nil
	}
	name := a.PrefixedName()
	if k == spec.DataContentType {
		name = headerContentType
	}
	if v := m.get(name); v != "" {
		return a, v
	}
	return a, nil
}

// GetExtension implements binding.MessageMetadataReader.
func (m *headerMessage) GetExtension(name string) any {
	if v := m.get(headerPrefix + name); v != "" {
		return v
	}
	return nil
}

func (m *headerMessage) get(name string) string {
	if v := m.h.Get(name); v != "" {
		return v
	}
	for k, vals := range m.h {
		if len(vals) > 0 && strings.EqualFold(k, name) {
			return vals[0]
		}
	}
	return ""
}
