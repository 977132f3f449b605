package devstack_test

import (
	"testing"

	"github.com/sluice-ml/sluice/libs/devstack"
	"github.com/sluice-ml/sluice/libs/devstack/devstacktest"
)

// BenchmarkStart measures devstack.Start until every component is ready
// (NATS with JetStream, Temporal serving the sluice namespace, UI, S3 with
// the bucket). Close is not timed. "fresh" starts on an empty directory
// (schema creation included); "restart" reopens an existing one.
func BenchmarkStart(b *testing.B) {
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			b.StartTimer()
			startAndClose(b, dir)
		}
	})
	b.Run("restart", func(b *testing.B) {
		dir := b.TempDir()
		startAndClose(b, dir)
		b.ResetTimer()
		for b.Loop() {
			startAndClose(b, dir)
		}
	})
}

func startAndClose(b *testing.B, dir string) {
	st, err := devstack.Start(b.Context(), devstacktest.Config(dir))
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}
