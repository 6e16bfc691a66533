package ssehttp

import "testing"

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		in   []string
		want bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{" gzip , deflate "}, true},
		{[]string{"gzip;q=1"}, true},
		{[]string{"gzip;q=1.000"}, true},
		{[]string{"gzip; q=0.001"}, true},
		{[]string{"gzip;Q=0.5"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip ; q=0.0"}, false},
		{[]string{"gzip;q=0.000"}, false},
		{[]string{"gzip;q=1.5"}, false},    // malformed: not acceptable
		{[]string{"gzip;q=1.001"}, false},  // above 1
		{[]string{"gzip;q=0.5000"}, false}, // four decimals
		{[]string{"gzip;q=abc"}, false},    // malformed
		{[]string{"gzip;q="}, false},       // malformed
		{[]string{"gzip;level=1"}, true},   // other parameters ignored
		{[]string{"gzipx"}, false},
		{[]string{"deflate, br"}, false},
		{[]string{"identity"}, false},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},     // the explicit entry wins
		{[]string{"*;q=0, gzip"}, true},      // in either order
		{[]string{"br", "gzip;q=0.2"}, true}, // several field lines
		{[]string{"gzip;q=0", "gzip"}, true}, // the most favourable entry
	}
	for _, tt := range tests {
		if got := acceptsGzip(tt.in); got != tt.want {
			t.Errorf("acceptsGzip(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}
