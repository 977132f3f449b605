package devstack

import (
	"go.temporal.io/server/common/dynamicconfig"
)

// Single-node tuning of the embedded Temporal server's dynamic config.
//
// Temporal's defaults are sized for multi-shard production clusters, where a per-shard rate limit of 20
// queue reads per second is invisible because hundreds of shards share the load. The dev stack runs one
// history shard, so the same limits serialise every workflow behind a 50 ms token bucket: a chain of no-op
// activities costs ~100 ms per activity (two transfer-queue reads each) instead of the ~5 ms the server
// actually spends. The values below lift those throttles; none changes durability (the SQLite file store
// keeps WAL mode with synchronous=NORMAL, see temporalSQLConfig) or what is written to a history.
//
// deploy/temporal/dynamicconfig.yaml ships the same values in Temporal's file-based format for compose and
// Kubernetes clusters; TestDynamicConfigFileMatchesDevstack keeps the two in step.
var temporalDynamicConfig = []struct {
	setting interface{ Key() dynamicconfig.Key }
	value   any
}{
	// Default 20 reads/s per shard. Every activity needs two transfer tasks read (dispatch the activity
	// task, then the workflow task that follows its completion); with one shard that caps a sequential
	// chain at ~10 activities/s. 1000/s means the limiter never binds before SQLite does.
	{dynamicconfig.TransferProcessorMaxPollRPS, 1000},
	// Default 20 reads/s per shard. Timer tasks carry activity timeouts, retry backoffs and
	// workflow.Sleep; a run with many concurrent steps (a 1,000-way loop) would queue its timeouts
	// behind the limiter.
	{dynamicconfig.TimerProcessorMaxPollRPS, 1000},
	// Default 20 reads/s per shard. Visibility tasks make a started or closed run appear in list queries
	// (`sluice run list`, the Temporal UI); at 20/s a burst of runs shows up late.
	{dynamicconfig.VisibilityProcessorMaxPollRPS, 1000},
	// Default 4 read and 4 write partitions per task queue. Partitions spread a hot queue over matching
	// hosts; on one host they only add forwarding between partitions, which is itself rate-limited
	// (matching.forwarderMaxRatePerSecond, default 10/s), so a task written to one partition while the
	// poller waits on another stalls ~50 ms. One partition: every poller sees every task at once.
	{dynamicconfig.MatchingNumTaskqueueReadPartitions, 1},
	{dynamicconfig.MatchingNumTaskqueueWritePartitions, 1},
	// Default 10/s. Only matters if a queue has more than one partition (see above); raised so that a
	// per-queue override of the partition counts does not bring the stall back.
	{dynamicconfig.MatchingForwarderMaxRatePerSecond, 1000},
	// Default false. With eager execution, a worker that completes a workflow task scheduling an
	// activity on its own task queue gets the activity task in the same response, skipping a matching
	// round trip. Workers opt in per activity (the SDK default); Sluice's workers run their workflows
	// and activities on one queue, so every step takes the fast path.
	{dynamicconfig.EnableActivityEagerExecution, true},
	// Default 128000 entries; the temporal CLI dev server uses 8096, which bounds the memory a laptop
	// spends on cached mutable state while still holding every workflow a 1,000-way fan-out keeps open.
	{dynamicconfig.HistoryCacheHostLevelMaxSize, 8096},
	// Default 10 per instance; the temporal CLI dev server uses 100. The Temporal UI's list and count
	// queries go through this limit.
	{dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance, 100},
}

// TemporalDynamicConfig returns the dynamic-config values the embedded Temporal server runs with, keyed by
// setting name as Temporal's file-based dynamic config spells it (lower case, e.g.
// "history.transferprocessormaxpollrps"). The map is a copy.
func TemporalDynamicConfig() map[string]any {
	out := make(map[string]any, len(temporalDynamicConfig))
	for _, s := range temporalDynamicConfig {
		out[s.setting.Key().String()] = s.value
	}
	return out
}

// temporalDynamicConfigClient is the static dynamic-config client handed to the embedded server.
func temporalDynamicConfigClient() dynamicconfig.StaticClient {
	c := make(dynamicconfig.StaticClient, len(temporalDynamicConfig))
	for _, s := range temporalDynamicConfig {
		c[s.setting.Key()] = s.value
	}
	return c
}
