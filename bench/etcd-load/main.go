// etcd-load: one client, sequential puts, each timed: the write latency an application of a
// stretched etcd sees from one site (bench/stretched-latency.ts runs it). Prints one JSON line:
// {"n", "ok", "failed", "p50", "p99", "max", "mean"} in milliseconds.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func main() {
	endpoint := flag.String("endpoint", "", "the member to write through, https://host:2379")
	cacert := flag.String("cacert", "", "etcd CA")
	cert := flag.String("cert", "", "client certificate")
	key := flag.String("key", "", "client key")
	n := flag.Int("n", 200, "puts")
	size := flag.Int("size", 256, "value bytes")
	prefix := flag.String("prefix", "/drctl-bench/", "key prefix")
	timeout := flag.Duration("timeout", 10*time.Second, "per put")
	flag.Parse()
	tc, err := transport.TLSInfo{CertFile: *cert, KeyFile: *key, TrustedCAFile: *cacert}.ClientConfig()
	if err != nil {
		fail(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, TLS: tc, DialTimeout: 5 * time.Second})
	if err != nil {
		fail(err)
	}
	defer c.Close()
	val := strings.Repeat("x", *size)
	// One put first: the connection and TLS handshake are not a write's latency.
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	_, _ = c.Put(ctx, *prefix+"warm", val)
	cancel()
	lat := make([]float64, 0, *n)
	failed := 0
	for i := 0; i < *n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		t := time.Now()
		_, err := c.Put(ctx, fmt.Sprintf("%s%d", *prefix, i), val)
		d := time.Since(t)
		cancel()
		if err != nil {
			failed++
			continue
		}
		lat = append(lat, float64(d.Microseconds())/1000)
	}
	sort.Float64s(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return -1
		}
		return lat[int(p*float64(len(lat)-1)+0.5)]
	}
	sum := 0.0
	for _, x := range lat {
		sum += x
	}
	mean := -1.0
	if len(lat) > 0 {
		mean = sum / float64(len(lat))
	}
	_ = json.NewEncoder(os.Stdout).Encode(map[string]any{
		"n": *n, "ok": len(lat), "failed": failed, "p50": q(0.5), "p99": q(0.99), "max": q(1), "mean": mean,
	})
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
