package paramserver_test

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluice-ml/sluice/examples/training/mnist/paramserver"
)

func TestStepBarrierOverRPC(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go paramserver.Serve(l, paramserver.NewServer())
	c := &paramserver.Remote{Addr: l.Addr().String()}
	t.Cleanup(func() { c.Close() })

	if _, err := c.Init(paramserver.InitArgs{Epoch: 9, Params: []float32{1, 2}, Steps: 2, Workers: 2, LR: 0.5}); err != nil {
		t.Fatal(err)
	}
	push := func(epoch, step int64, worker int, g []float32) paramserver.PushReply {
		t.Helper()
		rep, err := c.Push(paramserver.PushArgs{Epoch: epoch, Step: step, Worker: worker, Grad: g})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := push(9, 0, 0, []float32{2, 4}); !rep.Accepted || rep.Step != 0 {
		t.Fatalf("first push: %+v", rep)
	}
	if rep := push(9, 0, 0, []float32{100, 100}); rep.Accepted {
		t.Fatal("a second gradient from the same worker must be ignored")
	}
	if rep := push(8, 0, 1, []float32{100, 100}); rep.Accepted {
		t.Fatal("a gradient from another epoch must be ignored")
	}
	if rep := push(9, 0, 1, []float32{0, 0}); !rep.Accepted || rep.Step != 1 {
		t.Fatalf("barrier push: %+v", rep)
	}
	got, err := c.Pull(paramserver.PullArgs{MinStep: 1, WaitMillis: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// mean gradient {1, 2}, lr 0.5
	if diff := cmp.Diff([]float32{0.5, 1}, got.Params); diff != "" || got.Status.Step != 1 {
		t.Fatalf("params (-want +got):\n%s step %d", diff, got.Status.Step)
	}
	if _, err := c.Push(paramserver.PushArgs{Epoch: 9, Step: 1, Worker: 0, Grad: []float32{1}}); err == nil {
		t.Fatal("a gradient of the wrong size must be an error")
	}
	timedOut, err := c.Pull(paramserver.PullArgs{MinStep: 5, WaitMillis: 20})
	if err != nil || timedOut.Status.Step != 1 {
		t.Fatalf("pull past the step must time out with the current state: %+v %v", timedOut.Status, err)
	}
}

func TestRanges(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff([][2]int{{0, 4}, {4, 7}, {7, 10}}, paramserver.Ranges(10, 3)); diff != "" {
		t.Error(diff)
	}
}
