package boards

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/sluice-ml/sluice/libs/tfevents"
	"github.com/sluice-ml/sluice/services/notebooks/api/notebooksv1"
	"github.com/sluice-ml/sluice/services/notebooks/internal/tbspec"
)

// Data reads boards' event files for the HTTP API: one tfevents.Logdir per board, reloaded (incrementally)
// when a request comes and the last reload is older than ReloadInterval, like TensorBoard's --reload_interval.
type Data struct {
	// S3 reads s3:// logs paths; nil refuses them.
	S3 *minio.Client
	// VolumesDir holds the local stand-ins of persistent volume claims: pvc://<claim>/<path> is
	// <VolumesDir>/<namespace>/<claim>/<path>.
	VolumesDir string
	// ReloadInterval is the minimum time between two reloads of one board (default 1s).
	ReloadInterval time.Duration

	mu     sync.Mutex
	boards map[string]*entry
}

type entry struct {
	logspath string
	logdir   *tfevents.Logdir
	mu       sync.Mutex // serialises reloads
	loaded   time.Time
}

// ErrNoS3 is returned for an s3:// logs path when the service has no S3 client.
var ErrNoS3 = errors.New("spec.logspath: s3:// is not available (the service has no S3 configuration)")

// Source resolves tb's spec.logspath.
func (d *Data) Source(tb notebooksv1.Tensorboard) (tfevents.Source, error) {
	lp, err := tbspec.ParseLogsPath(tb.Spec.LogsPath)
	if err != nil {
		return nil, err
	}
	if lp.Scheme == "s3" {
		if d.S3 == nil {
			return nil, ErrNoS3
		}
		return tfevents.S3{Client: d.S3, Bucket: lp.Bucket, Prefix: lp.Path}, nil
	}
	return tfevents.Dir(lp.LocalDir(d.VolumesDir, tb.Metadata.Namespace)), nil
}

// Logdir returns tb's reader, reloaded unless it was reloaded within ReloadInterval.
func (d *Data) Logdir(ctx context.Context, tb notebooksv1.Tensorboard) (*tfevents.Logdir, error) {
	key := tb.Metadata.Namespace + "/" + tb.Metadata.Name
	d.mu.Lock()
	if d.boards == nil {
		d.boards = map[string]*entry{}
	}
	e := d.boards[key]
	if e == nil || e.logspath != tb.Spec.LogsPath {
		src, err := d.Source(tb)
		if err != nil {
			d.mu.Unlock()
			return nil, err
		}
		e = &entry{logspath: tb.Spec.LogsPath, logdir: tfevents.NewLogdir(src)}
		d.boards[key] = e
	}
	d.mu.Unlock()
	interval := d.ReloadInterval
	if interval <= 0 {
		interval = time.Second
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if time.Since(e.loaded) >= interval {
		if err := e.logdir.Reload(ctx); err != nil {
			return e.logdir, err
		}
		e.loaded = time.Now()
	}
	return e.logdir, nil
}

// Forget drops a deleted board's reader.
func (d *Data) Forget(ns, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.boards, ns+"/"+name)
}
