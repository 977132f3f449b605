package trainer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-ml/sluice/libs/tfevents"
)

// summaries writes one replica's TensorFlow event file (TensorBoard run
// "<task type>-<index>") and, for an s3:// log dir, uploads it. A nil
// *summaries writes nothing.
type summaries struct {
	w        *tfevents.Writer
	local    string // the run directory the file is written in
	remote   string // s3://…/<run>, "" for a local log dir
	up       Uploader
	every    int64
	lastSent int64
	closed   bool
}

// openSummaries creates the replica's event file under cfg.LogDir; nil
// when no log dir is configured.
func (r *run) openSummaries(ctx context.Context) (*summaries, error) {
	if r.cfg.LogDir == "" {
		return nil, nil
	}
	runName := fmt.Sprintf("%s-%d", r.tc.Task.Type, r.tc.Task.Index)
	s := &summaries{every: r.cfg.LogUploadEvery, lastSent: -1}
	if strings.Contains(r.cfg.LogDir, "://") {
		if r.cfg.Uploader == nil {
			return nil, fmt.Errorf("trainer: log dir %s needs an uploader", r.cfg.LogDir)
		}
		tmp, err := os.MkdirTemp("", "mnist-logs-")
		if err != nil {
			return nil, err
		}
		s.local, s.remote, s.up = tmp, strings.TrimSuffix(r.cfg.LogDir, "/")+"/"+runName, r.cfg.Uploader
	} else {
		s.local = filepath.Join(r.cfg.LogDir, runName)
		if err := os.MkdirAll(s.local, 0o755); err != nil {
			return nil, fmt.Errorf("trainer: log dir: %w", err)
		}
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	w, err := tfevents.Create(filepath.Join(s.local, tfevents.FileName(time.Now(), host, os.Getpid(), 0)))
	if err != nil {
		return nil, fmt.Errorf("trainer: event file: %w", err)
	}
	s.w = w
	if err := s.sync(ctx, 0, true); err != nil { // the run appears as soon as training starts
		return nil, err
	}
	r.log.Info("writing summaries", "run", runName, "logdir", r.cfg.LogDir)
	return s, nil
}

// add records the step's mini-batch loss and accuracy and flushes, so
// readers see every completed step; an s3:// log dir is uploaded every
// `every` steps.
func (s *summaries) add(ctx context.Context, step int64, loss, accuracy float64) error {
	if s == nil {
		return nil
	}
	now := time.Now()
	if err := s.w.AddScalar("loss", step, float32(loss), now); err != nil {
		return err
	}
	if err := s.w.AddScalar("accuracy", step, float32(accuracy), now); err != nil {
		return err
	}
	return s.sync(ctx, step, false)
}

func (s *summaries) sync(ctx context.Context, step int64, force bool) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if s.remote == "" || (!force && step-s.lastSent < s.every) {
		return nil
	}
	if err := s.up.UploadDir(ctx, s.local, s.remote); err != nil {
		return fmt.Errorf("trainer: upload summaries to %s: %w", s.remote, err)
	}
	s.lastSent = step
	return nil
}

// close flushes, closes and (for s3://) uploads the event file a last time.
// Safe to call twice.
func (s *summaries) close(ctx context.Context) error {
	if s == nil || s.closed {
		return nil
	}
	s.closed = true
	err := s.w.Close()
	if s.remote != "" {
		if uerr := s.up.UploadDir(ctx, s.local, s.remote); uerr != nil {
			err = errors.Join(err, fmt.Errorf("trainer: upload summaries to %s: %w", s.remote, uerr))
		}
		_ = os.RemoveAll(s.local)
	}
	return err
}
