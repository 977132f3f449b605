// Command trainer is the toy training program of the end-to-end tuning test: it prints Katib StdOut
// metric lines for a few "epochs" whose final loss is (log10(lr)+2)^2 + (optimizer penalty), minimal at
// lr = 0.01 with adam.
package main

import (
	"flag"
	"fmt"
	"math"
)

func main() {
	lr := flag.Float64("lr", 0.1, "learning rate")
	opt := flag.String("optimizer", "sgd", "optimizer")
	flag.Parse()
	loss := math.Pow(math.Log10(*lr)+2, 2)
	if *opt != "adam" {
		loss += 0.5
	}
	for epoch := 3; epoch >= 1; epoch-- {
		fmt.Printf("epoch=%d loss=%.6f accuracy=%.4f\n", 4-epoch, loss*float64(epoch), 1/(1+loss*float64(epoch)))
	}
}
