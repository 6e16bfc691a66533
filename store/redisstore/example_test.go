package redisstore_test

import (
	"context"
	"log"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/store/redisstore"
)

// Each hub node opens a Store on the same Redis and prefix; any of them
// takes any publish, and every one tails the same log. The example needs
// a Redis, so it is compiled but not run.
func Example() {
	s, err := redisstore.Open(redisstore.Options{
		URL:    "redis://:password@127.0.0.1:6379/0", // rediss:// for TLS
		Prefix: "ssehub",                             // keys "{ssehub}:..."
	})
	if err != nil {
		log.Fatal(err) // a bad URL or prefix: Open does not contact Redis
	}
	defer s.Close()
	h := hub.New(s, nil) // the Hub does not close s

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := s.Bounds(ctx); err != nil {
		log.Printf("not ready: %v", err) // Redis is down or unreachable
	}
	_ = h
}
