package natsstore_test

import (
	"context"
	"crypto/tls"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
	"github.com/ssehub/ssehub/store/natsstore"
)

// TestAuth checks TLS with a CA of the caller's, a token, and a user and
// password in the URL, on servers of the test's own: a Store with the
// right credentials works, and one with wrong ones fails within its
// context.
func TestAuth(t *testing.T) {
	certs := testserver.Certs(t)
	pool := certs.Pool
	tokenTLS := testserver.NATS(t, testserver.NATSOptions{Token: "s3cret", TLSCertFile: certs.Cert, TLSKeyFile: certs.Key})
	userPass := testserver.NATS(t, testserver.NATSOptions{User: "alice", Password: "pa55"})

	good := []struct {
		name string
		o    natsstore.Options
	}{
		{"token over TLS", natsstore.Options{URL: "tls://" + tokenTLS.Addr(), Token: "s3cret", TLSConfig: &tls.Config{RootCAs: pool}}},
		{"token over TLS, nats:// URL", natsstore.Options{URL: "nats://" + tokenTLS.Addr(), Token: "s3cret", TLSConfig: &tls.Config{RootCAs: pool}}},
		{"user and password in the URL", natsstore.Options{URL: "nats://alice:pa55@" + userPass.Addr()}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Stream = "AUTH"
			s, err := natsstore.Open(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			recs := []hub.Record{{Topics: []string{"a"}, Data: "x"}, {Topics: []string{"b"}, Data: "y", ID: "id-" + tt.name}}
			if err := s.Append(ctx, recs); err != nil {
				t.Fatalf("Append: %v", err)
			}
			if pos, err := s.Lookup(ctx, recs[1].ID); err != nil || pos != recs[1].Pos {
				t.Errorf("Lookup(%q) = %d, %v; want %d, nil", recs[1].ID, pos, err, recs[1].Pos)
			}
			var n int
			err = s.Read(ctx, recs[0].Pos-1, logtest.Selectors(t, "a", "b"), func(*hub.Record) bool { n++; return true })
			if err != nil || n != 2 {
				t.Errorf("Read = %v after %d records; want nil after 2", err, n)
			}
		})
	}

	bad := []struct {
		name string
		o    natsstore.Options
	}{
		{"wrong token", natsstore.Options{URL: "tls://" + tokenTLS.Addr(), Token: "wrong", TLSConfig: &tls.Config{RootCAs: pool}}},
		{"no token", natsstore.Options{URL: "tls://" + tokenTLS.Addr(), TLSConfig: &tls.Config{RootCAs: pool}}},
		{"unknown CA", natsstore.Options{URL: "tls://" + tokenTLS.Addr(), Token: "s3cret"}},
		{"no TLS", natsstore.Options{URL: "nats://" + tokenTLS.Addr(), Token: "s3cret"}},
		{"wrong password", natsstore.Options{URL: "nats://alice:nope@" + userPass.Addr()}},
		{"creds file missing", natsstore.Options{URL: "nats://" + userPass.Addr(), CredsFile: filepath.Join(t.TempDir(), "missing.creds")}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Stream = "AUTH"
			s, err := natsstore.Open(tt.o)
			if err != nil {
				t.Logf("Open: %v", err)
				return // refused at once: fine
			}
			defer s.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			start := time.Now()
			_, _, err = s.Bounds(ctx)
			if err == nil {
				t.Fatalf("Bounds with %s = nil; want an error", tt.name)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Bounds took %v to fail; want within its 2s context", d)
			}
			t.Logf("Bounds: %v", err)
			if errors.Is(err, hub.ErrLogClosed) {
				t.Errorf("Bounds = %v; want an error other than ErrLogClosed", err)
			}
			if err := s.Append(ctx, []hub.Record{{Topics: []string{"a"}}}); err == nil {
				t.Errorf("Append with %s = nil; want an error", tt.name)
			}
		})
	}
}
