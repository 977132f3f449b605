// Command serving-loadgen is the serving benchmark's load generator: -c keep-alive clients send the
// same TF Serving :predict request (-batch MNIST-shaped rows) to -url for -d, and it prints one
// JSON line: requests, errors, req/s, p50 and p99 latency in milliseconds.
//
//	serving-loadgen -url http://127.0.0.1:8501/v1/models/mnist:predict -batch 32 -c 4 -d 10s
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8501/v1/models/mnist:predict", "endpoint")
	batch := flag.Int("batch", 1, "rows per request")
	width := flag.Int("width", 784, "values per row")
	conc := flag.Int("c", 4, "concurrent keep-alive clients")
	dur := flag.Duration("d", 10*time.Second, "duration")
	warm := flag.Duration("warmup", time.Second, "warm-up before measuring")
	label := flag.String("label", "", "label copied into the output")
	token := flag.String("token", os.Getenv("SLUICE_TOKEN"), "bearer token sent with every request (default $SLUICE_TOKEN)")
	flag.Parse()

	body := rows(*batch, *width)
	// Each client keeps one connection alive and writes a request (headers and body) with one
	// write: the write buffer holds the whole request (the default 4 KiB buffer would send the
	// body in a 4 KiB write and then 32 KiB writes, waking the server for each).
	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc, WriteBufferSize: len(body) + 4<<10, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	send := func() (time.Duration, bool) {
		t0 := time.Now()
		req, err := http.NewRequest(http.MethodPost, *url, bytes.NewReader(body))
		if err != nil {
			return time.Since(t0), false
		}
		req.Header.Set("Content-Type", "application/json")
		if *token != "" {
			req.Header.Set("Authorization", "Bearer "+*token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return time.Since(t0), false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t0), resp.StatusCode == http.StatusOK
	}
	if _, ok := send(); !ok {
		fmt.Fprintln(os.Stderr, "serving-loadgen: first request failed; is the server up?")
		os.Exit(1)
	}
	for end := time.Now().Add(*warm); time.Now().Before(end); {
		send()
	}
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(*dur)
	for range *conc {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(end) {
				d, ok := send()
				if !ok {
					bad++
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	out := map[string]any{"label": *label, "url": *url, "batch": *batch, "concurrency": *conc, "seconds": elapsed.Seconds(),
		"requests": len(lat), "errors": errs, "rps": float64(len(lat)) / elapsed.Seconds()}
	if len(lat) > 0 {
		out["p50_ms"] = float64(lat[len(lat)/2].Microseconds()) / 1000
		out["p99_ms"] = float64(lat[len(lat)*99/100].Microseconds()) / 1000
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
	if errs > 0 {
		os.Exit(1)
	}
}

// rows is a row-format body of n rows of pseudo-random pixels in [0,1).
func rows(n, width int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := []byte(`{"instances":[`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j := range width {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(r.Float32()), 'g', -1, 32)
		}
		b = append(b, ']')
	}
	return append(b, "]}"...)
}
