// Package trainer is the distributed MNIST trainer: one program that plays
// the role TF_CONFIG gives it.
//
//   - ps: holds a shard of the parameters (paramserver over net/rpc on its
//     TF_CONFIG address) and runs until it is killed, as PS replicas do
//     under training-operator (they are stopped by cleanPodPolicy).
//   - worker i: trains on examples i, i+W, i+2W, ... (W workers): pulls the
//     parameters, computes the gradient of a mini-batch, pushes it to every
//     shard, and exits 0 after the last step.
//   - chief (or master; or worker 0 when the cluster has neither): waits for
//     the parameter servers, initialises them (from the latest checkpoint in
//     modelDir when there is one, so a restarted chief resumes), writes a
//     checkpoint every CheckpointEvery steps, and after the last step
//     evaluates the model on the 10,000 test images, exports it as ONNX to
//     exportDir/<version>/model.onnx with metrics.json beside it, prints
//     "accuracy=0.xxxx" and exits 0.
//   - evaluator: evaluates each new checkpoint in modelDir on the test set,
//     prints "step=N accuracy=0.xxxx", writes modelDir/eval/metrics.json and
//     exits after the final checkpoint.
//
// Steps are synchronous: a shard applies the mean of one gradient per worker
// (SGD, optionally with momentum) and only then moves to the next step. Without PS
// replicas the coordinator serves the parameters itself; without TF_CONFIG
// the process does everything alone.
package trainer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/sluice-ml/sluice/examples/training/mnist/mlp"
	"github.com/sluice-ml/sluice/examples/training/mnist/mnistdata"
	"github.com/sluice-ml/sluice/examples/training/mnist/paramserver"
)

// Config configures a trainer process.
type Config struct {
	// TFConfig is the TF_CONFIG value; empty runs a single process.
	TFConfig string
	// ModelDir receives checkpoints (a directory shared by the replicas).
	ModelDir string
	// ExportDir receives <ModelVersion>/model.onnx and metrics.json: a
	// local directory or an s3://bucket/prefix URI.
	ExportDir    string
	ModelVersion string
	// DataDir holds the MNIST files; empty means mnistdata.Dir().
	DataDir string

	Steps           int64   // synchronous steps (default 600)
	BatchSize       int     // examples per worker per step (default 64)
	Hidden          int     // hidden-layer width (default mlp.Hidden, 128); every replica needs the same
	LearningRate    float32 // default 0.3
	Momentum        float32 // SGD momentum in [0,1); 0 (default) is plain SGD
	CheckpointEvery int64   // default 100
	Seed            uint64  // parameter initialisation seed (default 1)
	// StartupTimeout bounds the wait for the other replicas (default 2m).
	StartupTimeout time.Duration

	// LogDir, when set, receives TensorFlow event files: each replica that
	// trains writes <LogDir>/<task type>-<index>/events.out.tfevents.* with
	// the scalars loss and accuracy (its mini-batch's, before the update) at
	// every step, as tf.summary.scalar does. A local directory, or an
	// s3://bucket/prefix URI (written locally, uploaded through Uploader
	// every LogUploadEvery steps and at the end).
	LogDir string
	// LogUploadEvery is the number of steps between uploads of an s3://
	// LogDir (default 50).
	LogUploadEvery int64

	// Out receives the result lines ("accuracy=0.9xxx").
	Out io.Writer
	Log *slog.Logger
	// Uploader stores exports whose ExportDir is an s3:// URI.
	Uploader Uploader
}

// Uploader copies a local directory to a remote URI (s3://bucket/prefix).
type Uploader interface {
	UploadDir(ctx context.Context, localDir, uri string) error
}

func (c *Config) defaults() {
	if c.Steps <= 0 {
		c.Steps = 600
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 64
	}
	if c.LearningRate <= 0 {
		c.LearningRate = 0.3
	}
	if c.Momentum < 0 || c.Momentum >= 1 {
		c.Momentum = 0
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = 100
	}
	if c.Hidden <= 0 {
		c.Hidden = mlp.Hidden
	}
	if c.LogUploadEvery <= 0 {
		c.LogUploadEvery = 50
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.StartupTimeout <= 0 {
		c.StartupTimeout = 2 * time.Minute
	}
	if c.ModelVersion == "" {
		c.ModelVersion = "1"
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Run plays this process's role until it is done or ctx is cancelled. A
// PS-only process returns nil when ctx is cancelled.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	tc, err := ParseTFConfig(cfg.TFConfig)
	if err != nil {
		return err
	}
	if tc == nil {
		tc = &TFConfig{Cluster: map[string][]string{"chief": {"local"}}}
		tc.Task.Type = "chief"
	}
	r := &run{cfg: cfg, tc: tc, net: mlp.Net{Hidden: cfg.Hidden}, log: cfg.Log.With("task", fmt.Sprintf("%s:%d", tc.Task.Type, tc.Task.Index))}
	return r.start(ctx)
}

type run struct {
	cfg Config
	tc  *TFConfig
	net mlp.Net
	log *slog.Logger

	coordinator, servesPS, computes, evaluates bool
	workers, workerIndex                       int
	psAddrs                                    []string
	local                                      *paramserver.Server

	dataOnce    sync.Once
	train, test *mnistdata.Set
	dataErr     error
}

func (r *run) start(ctx context.Context) error {
	tc := r.tc
	coordType := tc.coordinatorType()
	typ := tc.Task.Type
	r.coordinator = typ == "chief" || typ == "master" || (coordType == "" && typ == "worker" && tc.Task.Index == 0)
	r.psAddrs = tc.Cluster["ps"]
	r.servesPS = typ == "ps" || (len(r.psAddrs) == 0 && r.coordinator)
	if len(r.psAddrs) == 0 {
		if coordType != "" {
			r.psAddrs = tc.Cluster[coordType][:1]
		} else if len(tc.Cluster["worker"]) > 0 {
			r.psAddrs = tc.Cluster["worker"][:1]
		}
	}
	r.workers = len(tc.Cluster["worker"])
	r.computes = typ == "worker" || (r.workers == 0 && r.coordinator)
	r.workerIndex = 0
	if typ == "worker" {
		r.workerIndex = tc.Task.Index
	}
	if r.workers == 0 {
		r.workers = 1
	}
	r.evaluates = typ == "evaluator"
	r.log.Info("starting", "coordinator", r.coordinator, "ps", r.servesPS, "worker", r.computes, "evaluator", r.evaluates,
		"workers", r.workers, "ps_shards", len(r.psAddrs))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	if r.servesPS {
		r.local = paramserver.NewServer()
		if tc.Self() != "local" {
			addr, err := listenAddr(tc.Self())
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("trainer: listen on %s: %w", addr, err)
			}
			r.log.Info("serving parameters", "addr", l.Addr().String())
			go func() { <-ctx.Done(); l.Close() }()
			go paramserver.Serve(l, r.local)
		}
	}
	var done []func(context.Context) error
	if r.coordinator {
		done = append(done, r.coordinate)
	}
	if r.computes {
		done = append(done, r.work)
	}
	if r.evaluates {
		done = append(done, r.evaluate)
	}
	if len(done) == 0 { // a PS replica: serve until killed
		<-ctx.Done()
		return nil
	}
	for _, f := range done {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func (r *run) data() (train, test *mnistdata.Set, err error) {
	r.dataOnce.Do(func() {
		dir := r.cfg.DataDir
		if dir == "" {
			dir, r.dataErr = mnistdata.Dir()
			if r.dataErr != nil {
				return
			}
		}
		r.train, r.test, r.dataErr = mnistdata.Load(dir)
	})
	return r.train, r.test, r.dataErr
}

// shards returns a client per parameter shard; this process's own shard is
// called in-process.
func (r *run) shards() []paramserver.Shard {
	out := make([]paramserver.Shard, len(r.psAddrs))
	for i, a := range r.psAddrs {
		if r.servesPS && (a == r.tc.Self()) {
			out[i] = paramserver.Local{S: r.local}
		} else {
			out[i] = &paramserver.Remote{Addr: a}
		}
	}
	return out
}

func closeShards(shards []paramserver.Shard) {
	for _, s := range shards {
		if c, ok := s.(*paramserver.Remote); ok {
			c.Close()
		}
	}
}

// waitStatus polls every shard until all answer or the startup timeout
// passes.
func (r *run) waitStatus(ctx context.Context, shards []paramserver.Shard, needInit bool) ([]paramserver.Status, error) {
	deadline := time.Now().Add(r.cfg.StartupTimeout)
	for {
		sts := make([]paramserver.Status, len(shards))
		var err error
		for i, s := range shards {
			if sts[i], err = s.Status(); err != nil {
				break
			}
			if needInit && !sts[i].Initialized {
				err = fmt.Errorf("parameter server %s not initialised yet", r.psAddrs[i])
				break
			}
		}
		if err == nil {
			return sts, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("trainer: waiting for parameter servers: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pullAll pulls every shard at step >= minStep and concatenates them; ok is
// false when the shards are not all initialised at one (epoch-set, step).
func pullAll(shards []paramserver.Shard, numParams int, minStep int64, wait time.Duration) (params []float32, sts []paramserver.Status, ok bool, err error) {
	params = make([]float32, 0, numParams)
	for _, s := range shards {
		rep, err := s.Pull(paramserver.PullArgs{MinStep: minStep, WaitMillis: int(wait / time.Millisecond)})
		if err != nil {
			return nil, nil, false, err
		}
		sts = append(sts, rep.Status)
		params = append(params, rep.Params...)
	}
	for _, st := range sts {
		if !st.Initialized || st.Step != sts[0].Step {
			return params, sts, false, nil
		}
	}
	return params, sts, len(params) == numParams, nil
}

func epochKey(sts []paramserver.Status) string {
	k := ""
	for _, st := range sts {
		k += fmt.Sprintf("%d,", st.Epoch)
	}
	return k
}

// initShards initialises every shard from the latest checkpoint, or from
// fresh parameters, under a new epoch.
func (r *run) initShards(shards []paramserver.Shard) (int64, error) {
	params := r.net.Init(r.cfg.Seed)
	step := int64(0)
	idx, ok, err := latestCheckpoint(r.cfg.ModelDir)
	if err != nil {
		return 0, err
	}
	if ok && r.cfg.ModelDir != "" {
		p, err := loadCheckpoint(r.cfg.ModelDir, idx)
		if err != nil {
			return 0, err
		}
		if len(p) != r.net.NumParams() {
			return 0, fmt.Errorf("trainer: the checkpoint in %s has %d parameters, a hidden width of %d needs %d", r.cfg.ModelDir, len(p), r.cfg.Hidden, r.net.NumParams())
		}
		params, step = p, idx.Step
		r.log.Info("resuming from checkpoint", "step", step)
	}
	epoch := time.Now().UnixNano() ^ rand.Int64()
	for i, rg := range paramserver.Ranges(r.net.NumParams(), len(shards)) {
		_, err := shards[i].Init(paramserver.InitArgs{
			Epoch: epoch, Params: params[rg[0]:rg[1]], Step: step, Steps: r.cfg.Steps,
			Workers: r.workers, LR: r.cfg.LearningRate, Momentum: r.cfg.Momentum,
		})
		if err != nil {
			return 0, err
		}
	}
	return step, nil
}

func (r *run) coordinate(ctx context.Context) error {
	shards := r.shards()
	defer closeShards(shards)
	sts, err := r.waitStatus(ctx, shards, false)
	if err != nil {
		return err
	}
	step := sts[0].Step
	resume := true
	for _, st := range sts {
		if !st.Initialized || st.Epoch != sts[0].Epoch || st.Steps != r.cfg.Steps || st.Step != step {
			resume = false
		}
	}
	if resume {
		r.log.Info("parameter servers already initialised; resuming", "step", step)
	} else if step, err = r.initShards(shards); err != nil {
		return err
	}
	start := time.Now()
	lastSaved := step
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		next := min((step/r.cfg.CheckpointEvery+1)*r.cfg.CheckpointEvery, r.cfg.Steps)
		if step >= r.cfg.Steps {
			next = r.cfg.Steps
		}
		params, sts, ok, err := pullAll(shards, r.net.NumParams(), next, 2*time.Second)
		if err != nil {
			r.log.Warn("pull failed; retrying", "err", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for _, st := range sts {
			if !st.Initialized {
				r.log.Warn("a parameter server lost its state; re-initialising")
				if step, err = r.initShards(shards); err != nil {
					return err
				}
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		step = sts[0].Step
		if step > lastSaved && (step >= next || step >= r.cfg.Steps) {
			final := step >= r.cfg.Steps
			if r.cfg.ModelDir != "" {
				if err := saveCheckpoint(r.cfg.ModelDir, step, r.cfg.Steps, params, final); err != nil {
					return err
				}
			}
			lastSaved = step
			r.log.Info("checkpoint", "step", step, "elapsed", time.Since(start).Round(time.Millisecond).String())
		}
		if step >= r.cfg.Steps {
			return r.finish(ctx, params)
		}
	}
}

// finish evaluates the final parameters and exports the model.
func (r *run) finish(ctx context.Context, params []float32) error {
	_, test, err := r.data()
	if err != nil {
		return err
	}
	acc := r.accuracy(params, test)
	m := Metrics{Accuracy: acc, TestExamples: test.Len(), Steps: r.cfg.Steps, Workers: r.workers, BatchSize: r.cfg.BatchSize}
	if r.cfg.ExportDir != "" {
		uri, err := r.export(ctx, params, m)
		if err != nil {
			return err
		}
		r.log.Info("model exported", "uri", uri)
	}
	fmt.Fprintf(r.cfg.Out, "accuracy=%.4f\n", acc)
	r.log.Info("training finished", "accuracy", acc)
	return nil
}

func (r *run) accuracy(params []float32, set *mnistdata.Set) float64 {
	x := make([]float32, mlp.Inputs)
	correct := 0
	for i, img := range set.Images {
		mlp.Pixels(img, x)
		if r.net.Predict(params, x) == set.Labels[i] {
			correct++
		}
	}
	return float64(correct) / float64(set.Len())
}

// batch returns the step's mini-batch from this worker's shard of the
// training set (examples workerIndex, workerIndex+W, ...), reshuffled every
// pass with a seed derived from the pass number.
type batcher struct {
	set     *mnistdata.Set
	indexes []int
	perms   map[int64][]int
	seed    uint64
}

func newBatcher(set *mnistdata.Set, worker, workers int, seed uint64) *batcher {
	b := &batcher{set: set, perms: map[int64][]int{}, seed: seed}
	for i := worker; i < set.Len(); i += workers {
		b.indexes = append(b.indexes, i)
	}
	return b
}

func (b *batcher) perm(pass int64) []int {
	if p, ok := b.perms[pass]; ok {
		return p
	}
	clear(b.perms)
	r := rand.New(rand.NewPCG(b.seed, uint64(pass)))
	p := make([]int, len(b.indexes))
	for i, j := range r.Perm(len(b.indexes)) {
		p[i] = b.indexes[j]
	}
	b.perms[pass] = p
	return p
}

func (b *batcher) batch(step int64, size int) ([][]float32, []int) {
	xs := make([][]float32, size)
	ys := make([]int, size)
	n := int64(len(b.indexes))
	for k := range size {
		pos := step*int64(size) + int64(k)
		i := b.perm(pos / n)[pos%n]
		xs[k] = make([]float32, mlp.Inputs)
		mlp.Pixels(b.set.Images[i], xs[k])
		ys[k] = b.set.Labels[i]
	}
	return xs, ys
}

func (r *run) work(ctx context.Context) error {
	train, _, err := r.data()
	if err != nil {
		return err
	}
	shards := r.shards()
	defer closeShards(shards)
	if _, err := r.waitStatus(ctx, shards, true); err != nil {
		return err
	}
	summaries, err := r.openSummaries(ctx)
	if err != nil {
		return err
	}
	defer summaries.close(context.WithoutCancel(ctx))
	b := newBatcher(train, r.workerIndex, r.workers, r.cfg.Seed+uint64(r.workerIndex)+1)
	ranges := paramserver.Ranges(r.net.NumParams(), len(shards))
	lastEpochs, lastStep := "", int64(-1)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		params, sts, ok, err := pullAll(shards, r.net.NumParams(), lastStep+1, 2*time.Second)
		if err != nil {
			r.log.Warn("pull failed; retrying", "err", err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if !ok {
			continue
		}
		step, epochs := sts[0].Step, epochKey(sts)
		if step >= sts[0].Steps {
			r.log.Info("training done", "steps", step)
			return summaries.close(ctx)
		}
		if epochs == lastEpochs && step <= lastStep {
			continue // still waiting for the other workers
		}
		xs, ys := b.batch(step, r.cfg.BatchSize)
		grad, loss, correct, err := r.net.Gradient(params, xs, ys)
		if err != nil {
			return err
		}
		if err := summaries.add(ctx, step, loss, float64(correct)/float64(len(ys))); err != nil {
			return err
		}
		for i, s := range shards {
			if _, err := s.Push(paramserver.PushArgs{Epoch: sts[i].Epoch, Step: step, Worker: r.workerIndex, Grad: grad[ranges[i][0]:ranges[i][1]]}); err != nil {
				r.log.Warn("push failed", "err", err)
			}
		}
		if step%100 == 0 {
			r.log.Info("step", "step", step, "loss", fmt.Sprintf("%.4f", loss))
		}
		lastEpochs, lastStep = epochs, step
	}
}

func (r *run) evaluate(ctx context.Context) error {
	if r.cfg.ModelDir == "" {
		return errors.New("trainer: the evaluator needs modelDir")
	}
	_, test, err := r.data()
	if err != nil {
		return err
	}
	last := int64(-1)
	for {
		idx, ok, err := latestCheckpoint(r.cfg.ModelDir)
		if err != nil {
			return err
		}
		if ok && idx.Step > last {
			params, err := loadCheckpoint(r.cfg.ModelDir, idx)
			if err != nil {
				return err
			}
			acc := r.accuracy(params, test)
			last = idx.Step
			fmt.Fprintf(r.cfg.Out, "step=%d accuracy=%.4f\n", idx.Step, acc)
			m := Metrics{Accuracy: acc, TestExamples: test.Len(), Steps: idx.Step}
			if err := writeMetrics(r.cfg.ModelDir+"/eval/metrics.json", m); err != nil {
				return err
			}
			if idx.Final {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}
