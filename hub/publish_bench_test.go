package hub

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkParseNDJSON measures the parsing and checking of an NDJSON
// publish body of 100 events, each of the 100-byte JSON payload that
// ssehub bench publishes.
func BenchmarkParseNDJSON(b *testing.B) {
	var body strings.Builder
	for i := range 100 {
		fmt.Fprintf(&body, `{"topic":"bench/x","data":"{\"t\":1764990000000000000,\"seq\":%d,\"pad\":\"%s\"}"}`+"\n", i, strings.Repeat("p", 40))
	}
	raw := []byte(body.String())
	l := Limits{}.resolve()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		recs, err := parseNDJSON(&l, raw)
		if err != nil || len(recs) != 100 {
			b.Fatalf("parseNDJSON = %d records, %v", len(recs), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
}
