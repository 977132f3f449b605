// Package claimcheck keeps large values out of Temporal: a payload codec that stores every payload over
// a threshold in S3 and puts a small reference in its place (the claim-check pattern), so workflow and
// activity inputs, results, queries and memos of any size up to the documented limits stay below
// Temporal's blob limits (2 MiB per payload by default) while workflows see the values unchanged.
package claimcheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-ml/sluice/libs/artifacts"
)

// Threshold is the payload size above which a payload is stored in S3 (bytes).
const Threshold = 128 << 10

// encodingRef marks a payload whose data is the S3 key of the original payload.
const encodingRef = "sluice/claim-check"

// Prefix is the S3 key prefix of stored payloads: _payloads/<sha256 of the payload>.
const Prefix = "_payloads"

// Codec is a converter.PayloadCodec over an artifacts.Store. Stored payloads are content-addressed,
// so encoding the same value twice stores it once and decoding is safe on every replay.
type Codec struct {
	Store     *artifacts.Store
	Threshold int
}

// Encode implements converter.PayloadCodec.
func (c *Codec) Encode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if p.Size() <= c.threshold() {
			out[i] = p
			continue
		}
		b, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("claimcheck: %w", err)
		}
		sum := sha256.Sum256(b)
		key := path.Join(Prefix, hex.EncodeToString(sum[:]))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err = c.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("claimcheck: store payload of %d bytes: %w", len(b), err)
		}
		out[i] = &commonpb.Payload{Metadata: map[string][]byte{converter.MetadataEncoding: []byte(encodingRef)}, Data: []byte(key)}
	}
	return out, nil
}

// Decode implements converter.PayloadCodec.
func (c *Codec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(ps))
	for i, p := range ps {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != encodingRef {
			out[i] = p
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		b, err := c.get(ctx, string(p.Data))
		cancel()
		if err != nil {
			return nil, fmt.Errorf("claimcheck: payload %s: %w", p.Data, err)
		}
		var orig commonpb.Payload
		if err := proto.Unmarshal(b, &orig); err != nil {
			return nil, fmt.Errorf("claimcheck: payload %s: %w", p.Data, err)
		}
		out[i] = &orig
	}
	return out, nil
}

func (c *Codec) get(ctx context.Context, key string) ([]byte, error) {
	rc, _, err := c.Store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (c *Codec) threshold() int {
	if c.Threshold > 0 {
		return c.Threshold
	}
	return Threshold
}

// DataConverter is Temporal's default data converter with the claim-check codec.
func DataConverter(store *artifacts.Store) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), &Codec{Store: store})
}

// NewClient returns a client on c's connection whose data converter checks large payloads into store.
// Every client that starts, queries or reads pipeline workflows, and the worker that runs them, must
// use it.
func NewClient(c client.Client, namespace string, store *artifacts.Store, opts client.Options) (client.Client, error) {
	opts.Namespace = namespace
	opts.DataConverter = DataConverter(store)
	return client.NewClientFromExisting(c, opts)
}
