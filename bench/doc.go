// Package bench holds side-by-side benchmarks of ssehub's sse package and
// two other Go SSE libraries, github.com/tmaxmax/go-sse and
// github.com/r3labs/sse/v2, on one realistic stream.
//
// It is a separate module so that the main module never depends on the
// libraries it is compared with. Everything is in the _test.go files; run
//
//	cd bench && ./run.sh
//
// and see docs/BENCHMARKS.md for the figures and what each benchmark
// measures.
package bench
