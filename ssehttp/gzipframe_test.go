package ssehttp_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/ssehttp"
)

// TestAppendGzipFrame checks that a gzip header followed by frames made
// once, in any order and with repeats, decodes to the bytes they were
// made from, and that each frame is decoded whole as soon as it has
// arrived.
func TestAppendGzipFrame(t *testing.T) {
	parts := [][]byte{
		[]byte(": open\n\n"),
		[]byte("id: 1\ndata: {\"t\":1,\"seq\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n\n"),
		[]byte(strings.Repeat("data: a longer event that compresses well\n", 200) + "\n"),
		[]byte(": ping\n"),
		{}, // an empty frame is a valid frame
	}
	frames := make([][]byte, len(parts))
	for i, p := range parts {
		frames[i] = ssehttp.AppendGzipFrame(nil, p)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 20 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pr.Close()
			order := make([]int, 12)
			for i := range order {
				order[i] = rng.IntN(len(parts))
			}
			go func() {
				_, _ = pw.Write(ssehttp.AppendGzipHeader(nil))
				for _, i := range order {
					if _, err := pw.Write(frames[i]); err != nil {
						return
					}
				}
				pw.Close() // no trailer: the stream is cut short
			}()
			zr, err := gzip.NewReader(pr)
			if err != nil {
				t.Fatalf("gzip.NewReader: %v", err)
			}
			for k, i := range order {
				got := make([]byte, len(parts[i]))
				if _, err := io.ReadFull(zr, got); err != nil {
					t.Fatalf("frame %d (part %d): %v", k, i, err)
				}
				if !bytes.Equal(got, parts[i]) {
					t.Fatalf("frame %d = %q; want %q", k, got, parts[i])
				}
			}
			if _, err := zr.Read(make([]byte, 1)); err != io.ErrUnexpectedEOF {
				t.Errorf("Read at the end = %v; want io.ErrUnexpectedEOF (no trailer)", err)
			}
		})
	}
}

// TestGzipFramesStream checks a stream with GzipFrames: headers, each
// event decoded as soon as it is sent, whether sent with Send, WriteRaw
// or WriteDeflated, and an uncompressed stream for a client that does
// not accept gzip.
func TestGzipFramesStream(t *testing.T) {
	shared := ssehttp.AppendGzipFrame(nil, []byte("id: 3\ndata: shared\n\n"))
	for _, proto := range protos {
		for _, accept := range []bool{true, false} {
			t.Run(fmt.Sprint(proto, "/accept=", accept), func(t *testing.T) {
				next := make(chan struct{})
				errc := make(chan error, 1)
				srv, c := newServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
					errc <- func() error {
						s, err := ssehttp.NewStream(w, r, &ssehttp.Options{GzipFrames: true, Heartbeat: -1})
						if err != nil {
							return err
						}
						defer s.Close()
						if got := s.GzipFrames(); got != accept {
							return fmt.Errorf("GzipFrames() = %v; want %v", got, accept)
						}
						steps := []func() error{
							func() error { return s.Send(sse.Event{ID: "1", Data: "sent"}) },
							func() error { return s.WriteRaw([]byte("id: 2\ndata: raw\n\n")) },
							func() error {
								if !accept {
									if err := s.WriteDeflated(shared); !errors.Is(err, ssehttp.ErrNotFramed) {
										return fmt.Errorf("WriteDeflated on a plain stream = %v; want ErrNotFramed", err)
									}
									return s.WriteRaw([]byte("id: 3\ndata: shared\n\n"))
								}
								return s.WriteDeflated(shared)
							},
						}
						for i, step := range steps {
							if i > 0 {
								select {
								case <-next:
								case <-r.Context().Done():
									return r.Context().Err()
								}
							}
							if err := step(); err != nil {
								return err
							}
						}
						return nil
					}()
				})
				hd := http.Header{"Accept-Encoding": {"identity"}}
				if accept {
					hd = http.Header{"Accept-Encoding": {"gzip, deflate, br"}}
				}
				resp := get(t, c, srv.URL, hd)
				wantCE := map[bool]string{true: "gzip", false: ""}[accept]
				if got := resp.Header.Get("Content-Encoding"); got != wantCE {
					t.Fatalf("Content-Encoding = %q; want %q", got, wantCE)
				}
				if got := resp.Header.Get("Vary"); got != "Accept-Encoding" {
					t.Errorf("Vary = %q; want Accept-Encoding", got)
				}
				body := io.Reader(resp.Body)
				if accept {
					zr, err := gzip.NewReader(resp.Body)
					if err != nil {
						t.Fatalf("gzip.NewReader: %v", err)
					}
					body = zr
				}
				dec := sse.NewDecoder(body)
				want := []string{"sent", "raw", "shared"}
				for i, w := range want {
					if i > 0 {
						next <- struct{}{}
					}
					ev := decodeAll(t, dec, 1)[0]
					if ev.Data != w || ev.ID != fmt.Sprint(i+1) {
						t.Fatalf("event %d = %+v; want id %d, data %q", i, ev, i+1, w)
					}
				}
				if err := recv(t, errc, "handler"); err != nil {
					t.Errorf("handler: %v", err)
				}
			})
		}
	}
}

// TestGzipFramesHeartbeat checks that a GzipFrames stream's heartbeats
// are compressed as its events are, and that a heartbeat is the same
// comment as on a plain stream.
func TestGzipFramesHeartbeat(t *testing.T) {
	for _, frames := range []bool{true, false} {
		t.Run(fmt.Sprint("frames=", frames), func(t *testing.T) {
			errc := make(chan error, 1)
			srv, c := newServer(t, "HTTP/1.1", func(w http.ResponseWriter, r *http.Request) {
				s, err := ssehttp.NewStream(w, r, &ssehttp.Options{GzipFrames: frames, Heartbeat: 5 * time.Millisecond})
				if err != nil {
					errc <- err
					return
				}
				defer s.Close()
				<-s.Done()
				errc <- nil
			})
			resp := get(t, c, srv.URL, http.Header{"Accept-Encoding": {"gzip"}})
			body := io.Reader(resp.Body)
			if frames {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatalf("gzip.NewReader: %v", err)
				}
				body = zr
			}
			br := bufio.NewReader(body)
			want := []string{": open\n", ": ping\n", ": ping\n"}
			for i, w := range want {
				line, err := br.ReadString('\n')
				if err != nil || line != w {
					t.Fatalf("line %d = %q, %v; want %q", i, line, err, w)
				}
			}
			resp.Body.Close()
			if err := recv(t, errc, "handler"); err != nil {
				t.Errorf("handler: %v", err)
			}
		})
	}
}
