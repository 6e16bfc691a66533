package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/hub/logtest"
	"github.com/ssehub/ssehub/internal/testserver"
)

func records(n int, topics ...string) []hub.Record {
	recs := make([]hub.Record, n)
	for i := range recs {
		recs[i] = hub.Record{Topics: topics, Data: fmt.Sprintf("%s #%d", topics, i)}
	}
	return recs
}

func mustAppend(t testing.TB, s *Store, recs []hub.Record) []hub.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Append(ctx, recs); err != nil {
		t.Fatalf("Append(%d records): %v", len(recs), err)
	}
	return recs
}

func readPositions(t testing.TB, s *Store, after uint64, sels []hub.Selector) []uint64 {
	t.Helper()
	var got []uint64
	err := s.Read(t.Context(), after, sels, func(r *hub.Record) bool {
		got = append(got, r.Pos)
		return true
	})
	if err != nil {
		t.Fatalf("Read(after %d, %v): %v", after, sels, err)
	}
	return got
}

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no URL", Options{}, "no URL"},
		{"bad scheme", Options{URL: "http://127.0.0.1:6379"}, "scheme"},
		{"bad URL", Options{URL: "redis://127.0.0.1:6379/x"}, "database"},
		{"brace in prefix", Options{URL: "redis://127.0.0.1:6379", Prefix: "a}b"}, "brace"},
		{"TLSConfig without rediss", Options{URL: "redis://127.0.0.1:6379", TLSConfig: &tls.Config{}}, "rediss://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(tt.o)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%+v) = nil error; want one mentioning %q", tt.o, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "redisstore: open") {
				t.Errorf("Open(%+v) = %v; want an error mentioning %q", tt.o, err, tt.want)
			}
		})
	}
}

// TestKeys checks that every key is under the prefix's hash tag, that
// two prefixes do not see each other, and that trimming everything
// leaves only the counter, the emptied log and nothing of the indexes.
func TestKeys(t *testing.T) {
	url := testserver.RedisURL(t)
	prefix := uniquePrefix(t, url)
	a := openStore(t, url, Options{Prefix: prefix})
	b := openStore(t, url, Options{})
	mustAppend(t, a, []hub.Record{{Topics: []string{"x", "y/z"}, ID: "pub"}, {Topics: []string{"x"}}})
	mustAppend(t, b, records(3, "x"))
	if got := readPositions(t, a, 0, logtest.Selectors(t, "**")); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("prefix a holds %v; want [1 2]", got)
	}
	if got := readPositions(t, b, 0, logtest.Selectors(t, "x")); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("prefix b holds %v; want [1 2 3]", got)
	}
	keys := func() []string {
		c := redis.NewClient(must(redis.ParseURL(url)))
		defer c.Close()
		ks, err := c.Keys(t.Context(), "*"+prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ks)
		return ks
	}
	tag := "{" + prefix + "}:"
	want := []string{tag + "ids", tag + "log", tag + "seq", tag + "t:x", tag + "t:y/z", tag + "topics"}
	if got := keys(); !slices.Equal(got, want) {
		t.Errorf("keys = %q; want %q", got, want)
	}
	if n, err := a.Trim(t.Context(), hub.Retention{MaxCount: 1}); n != 1 || err != nil {
		t.Fatalf("Trim(MaxCount 1) = %d, %v; want 1, nil", n, err)
	}
	// "pub" and y/z went with record 1.
	want = []string{tag + "log", tag + "seq", tag + "t:x", tag + "topics"}
	if got := keys(); !slices.Equal(got, want) {
		t.Errorf("after Trim, keys = %q; want %q", got, want)
	}
	if _, err := a.Lookup(t.Context(), "pub"); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("Lookup(pub) after Trim = %v; want ErrNotFound", err)
	}
	if n, err := a.Trim(t.Context(), hub.Retention{MaxAge: time.Nanosecond}); n != 1 || err != nil {
		t.Fatalf("Trim(MaxAge 1ns) = %d, %v; want 1, nil", n, err)
	}
	want = []string{tag + "log", tag + "seq"}
	if got := keys(); !slices.Equal(got, want) {
		t.Errorf("after trimming all, keys = %q; want %q", got, want)
	}
	if first, last, err := a.Bounds(t.Context()); first != 0 || last != 2 || err != nil {
		t.Errorf("Bounds = %d, %d, %v; want 0, 2, nil", first, last, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestIndex checks that Read with exact selectors and with patterns that
// have a literal prefix reads only the matching records, and that a
// selector without one scans.
func TestIndex(t *testing.T) {
	s := openStore(t, testserver.RedisURL(t), Options{})
	var quiet []uint64
	for i := range 5 {
		recs := mustAppend(t, s, records(1000, "busy"))
		q := mustAppend(t, s, []hub.Record{{Topics: []string{"quiet/a", "quiet/b", fmt.Sprint("other/", i)}}})
		quiet = append(quiet, q[0].Pos)
		_ = recs
	}
	tests := []struct {
		sels    []string
		want    []uint64
		visited uint64
	}{
		{[]string{"quiet/a"}, quiet, 5},
		{[]string{"quiet/a", "quiet/b"}, quiet, 5},
		{[]string{"quiet/*"}, quiet, 5},
		{[]string{"quiet/**", "other/3"}, quiet, 5},
		{[]string{"other/3"}, quiet[3:4], 1},
		{[]string{"nothing"}, nil, 0},
		{[]string{"*/a"}, quiet, 5005},
	}
	for _, tt := range tests {
		before := s.visited.Load()
		got := readPositions(t, s, 0, logtest.Selectors(t, tt.sels...))
		if !slices.Equal(got, tt.want) {
			t.Errorf("Read(%q) = %v; want %v", tt.sels, got, tt.want)
		}
		if n := s.visited.Load() - before; n != tt.visited {
			t.Errorf("Read(%q) decoded %d records; want %d", tt.sels, n, tt.visited)
		}
	}
}

// TestNodes checks two Stores on one prefix, as two hub nodes: IDs
// resolve and collide across them, and concurrent Appends of one ID on
// both succeed once.
func TestNodes(t *testing.T) {
	url := testserver.RedisURL(t)
	prefix := uniquePrefix(t, url)
	a := openStore(t, url, Options{Prefix: prefix})
	b := openStore(t, url, Options{Prefix: prefix})
	mustAppend(t, a, []hub.Record{{Topics: []string{"t"}, ID: "x"}})
	if pos, err := b.Lookup(t.Context(), "x"); pos != 1 || err != nil {
		t.Errorf("b.Lookup(x) = %d, %v; want 1, nil", pos, err)
	}
	if err := b.Append(t.Context(), []hub.Record{{Topics: []string{"t"}}, {Topics: []string{"t"}, ID: "x"}}); !errors.Is(err, hub.ErrDuplicateID) {
		t.Errorf("b.Append(x again) = %v; want ErrDuplicateID", err)
	}
	var (
		wg sync.WaitGroup
		ok atomic.Int32
	)
	for i := range 16 {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			err := s.Append(t.Context(), []hub.Record{{Topics: []string{"t"}}, {Topics: []string{"t"}, ID: "race"}})
			switch {
			case err == nil:
				ok.Add(1)
			case !errors.Is(err, hub.ErrDuplicateID):
				t.Errorf("Append: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("%d of 16 Appends of one ID succeeded; want 1", ok.Load())
	}
	if first, last, err := a.Bounds(t.Context()); first != 1 || last != 3 || err != nil {
		t.Errorf("Bounds = %d, %d, %v; want 1, 3, nil", first, last, err)
	}
}

// TestTrimConcurrent trims from several nodes at once, in small steps:
// every record is removed and counted once, and the indexes follow.
func TestTrimConcurrent(t *testing.T) {
	url := testserver.RedisURL(t)
	prefix := uniquePrefix(t, url)
	const n, keep = 5000, 100
	var nodes []*Store
	for range 4 {
		nodes = append(nodes, openStore(t, url, Options{Prefix: prefix, TrimChunk: 97}))
	}
	for i := 0; i < n; i += 500 {
		recs := records(500, "a")
		for j := range recs {
			if j%2 == 0 {
				recs[j].Topics = []string{"a", "b"}
				recs[j].ID = fmt.Sprint("id-", i+j)
			}
		}
		mustAppend(t, nodes[0], recs)
	}
	var (
		wg    sync.WaitGroup
		total atomic.Int64
	)
	for _, s := range nodes {
		wg.Go(func() {
			got, err := s.Trim(t.Context(), hub.Retention{MaxCount: keep})
			if err != nil {
				t.Errorf("Trim: %v", err)
			}
			total.Add(int64(got))
		})
	}
	wg.Wait()
	if total.Load() != n-keep {
		t.Errorf("concurrent Trims removed %d in all; want %d", total.Load(), n-keep)
	}
	s := nodes[1]
	if first, last, err := s.Bounds(t.Context()); first != n-keep+1 || last != n || err != nil {
		t.Errorf("Bounds = %d, %d, %v; want %d, %d, nil", first, last, err, n-keep+1, n)
	}
	if got := readPositions(t, s, n-keep, logtest.Selectors(t, "b")); len(got) != keep/2 || got[0] != n-keep+1 {
		t.Errorf("Read(b) after Trim = %d records from %v; want %d from %d", len(got), got[:min(len(got), 1)], keep/2, n-keep+1)
	}
	c := redis.NewClient(must(redis.ParseURL(url)))
	defer c.Close()
	tag := "{" + prefix + "}:"
	for key, want := range map[string]int64{tag + "t:a": keep, tag + "t:b": keep / 2} {
		if got, err := c.XLen(t.Context(), key).Result(); got != want || err != nil {
			t.Errorf("XLEN %s = %d, %v; want %d", key, got, err, want)
		}
	}
	if got, err := c.HLen(t.Context(), tag+"ids").Result(); got != keep/2 || err != nil {
		t.Errorf("HLEN ids = %d, %v; want %d", got, err, keep/2)
	}
	if _, err := s.Lookup(t.Context(), fmt.Sprint("id-", n-keep-2)); !errors.Is(err, hub.ErrNotFound) {
		t.Errorf("Lookup of a trimmed ID = %v; want ErrNotFound", err)
	}
	// A trimmed ID is free again.
	mustAppend(t, s, []hub.Record{{Topics: []string{"a"}, ID: "id-0"}})
}

// TestDown checks a Store whose server is not there: Open succeeds, the
// methods fail promptly with errors that are not ErrLogClosed, and they
// work once the server is up.
func TestDown(t *testing.T) {
	srv := testserver.Redis(t, testserver.RedisOptions{Stopped: true})
	s, err := Open(Options{URL: srv.URL(), Prefix: "down"})
	if err != nil {
		t.Fatalf("Open while Redis is down: %v", err)
	}
	defer s.Close()
	checkDown(t, s)
	srv.Start()
	waitFor(t, 10*time.Second, "Bounds after the server started", func() bool {
		_, _, err := s.Bounds(t.Context())
		return err == nil
	})
	mustAppend(t, s, records(2, "a"))
	if got := readPositions(t, s, 0, logtest.Selectors(t, "a")); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("Read = %v; want [1 2]", got)
	}
}

// checkDown checks that every method of s fails, within a few seconds,
// with an error that is not ErrLogClosed.
func checkDown(t *testing.T, s *Store) {
	t.Helper()
	start := time.Now()
	check := func(what string, err error) {
		t.Helper()
		if err == nil || errors.Is(err, hub.ErrLogClosed) || !strings.HasPrefix(err.Error(), "redisstore: ") {
			t.Errorf("%s with Redis down = %v; want a redisstore error", what, err)
		}
	}
	ctx := func() context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	check("Append", s.Append(ctx(), records(1, "a")))
	_, _, err := s.Bounds(ctx())
	check("Bounds", err)
	_, err = s.Lookup(ctx(), "x")
	check("Lookup", err)
	check("Read", s.Read(ctx(), 0, logtest.Selectors(t, "a"), func(*hub.Record) bool { return true }))
	_, err = s.Trim(ctx(), hub.Retention{MaxCount: 1})
	check("Trim", err)
	check("Tail", s.Tail(ctx(), 0, func([]hub.Record) error { return nil }))
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("the methods took %v to fail with Redis down", d)
	}
}

// TestSilentServer checks that Bounds fails within its context against
// a server that accepts connections and never answers.
func TestSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	defer func() {
		l.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}()
	s, err := Open(Options{URL: "redis://" + l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = s.Bounds(ctx)
	if err == nil {
		t.Fatal("Bounds against a silent server succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Bounds with a 500ms context took %v to fail: %v", d, err)
	}
}

// TestPassword checks the password and the ACL user of the URL, on a
// server of the test's own.
func TestPassword(t *testing.T) {
	srv := testserver.Redis(t, testserver.RedisOptions{Password: "s3cret",
		Args: []string{"--user", "alice", "on", ">alice-pw", "~*", "&*", "+@all"}})
	tests := []struct {
		url  string
		want string // in the error; "" for success
	}{
		{"redis://:s3cret@" + srv.Addr(), ""},
		{"redis://default:s3cret@" + srv.Addr(), ""},
		{"redis://alice:alice-pw@" + srv.Addr() + "/0", ""},
		{"redis://:wrong@" + srv.Addr(), "WRONGPASS"},
		{"redis://alice:s3cret@" + srv.Addr(), "WRONGPASS"},
		{"redis://" + srv.Addr(), "NOAUTH"},
	}
	for _, tt := range tests {
		s, err := Open(Options{URL: tt.url, Prefix: "pw"})
		if err != nil {
			t.Fatalf("Open(%s): %v", tt.url, err)
		}
		if tt.want == "" {
			err = s.Append(t.Context(), records(1, "a"))
		} else {
			// Bounds: Redis answers a long command of an unauthenticated
			// client with a protocol error, and closes the connection.
			_, _, err = s.Bounds(t.Context())
		}
		s.Close()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Append with %s = %v; want nil", tt.url, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Append with %s = %v; want an error mentioning %s", tt.url, err, tt.want)
		}
	}
}

// TestTLS checks rediss:// against a server of the test's own with a
// certificate made for it.
func TestTLS(t *testing.T) {
	certs := testserver.Certs(t)
	srv := testserver.Redis(t, testserver.RedisOptions{Password: "tls-pw",
		TLSCertFile: certs.Cert, TLSKeyFile: certs.Key, TLSCAFile: certs.CA})
	url := "rediss://:tls-pw@" + srv.Addr()

	s, err := Open(Options{URL: url, Prefix: "tls", TLSConfig: certs.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustAppend(t, s, records(3, "a"))
	if got := readPositions(t, s, 0, logtest.Selectors(t, "a")); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("Read over TLS = %v; want [1 2 3]", got)
	}

	// Without the CA, the server's certificate is refused.
	s2, err := Open(Options{URL: url, Prefix: "tls"})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, _, err := s2.Bounds(t.Context()); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("Bounds without the CA = %v; want an unknown authority error", err)
	}
	// Plain text to the TLS port fails.
	s3, err := Open(Options{URL: "redis://:tls-pw@" + srv.Addr(), Prefix: "tls"})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if _, _, err := s3.Bounds(ctx); err == nil {
		t.Error("Bounds in plain text to the TLS port succeeded")
	}
}
