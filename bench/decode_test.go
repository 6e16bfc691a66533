package bench

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	r3sse "github.com/r3labs/sse/v2"
	ssehub "github.com/ssehub/ssehub/sse"
	gosse "github.com/tmaxmax/go-sse"
	"gopkg.in/cenkalti/backoff.v1"
)

// A decoder reads a whole stream from r and returns how many events it
// dispatched. When visit is not nil it is called with each event's last
// event ID, type and data; the benchmarks pass nil.
type decoder struct {
	name string
	// fields is false for the entries that only find event boundaries and
	// never see fields, so they cannot call visit.
	fields bool
	decode func(r io.Reader, visit func(id, typ, data string)) (int, error)
}

var decoders = []decoder{
	{"ssehub", true, decodeSSEHub},
	{"go-sse", true, decodeGoSSE},
	{"r3labs-client", true, decodeR3labsClient},
	{"r3labs-reader", false, decodeR3labsReader},
	{"bufio-scanner", false, scanLines},
}

// decodeSSEHub uses ssehub's sse.Decoder, one per stream.
func decodeSSEHub(r io.Reader, visit func(id, typ, data string)) (int, error) {
	d := ssehub.NewDecoder(r)
	n := 0
	var ev ssehub.Event
	for {
		err := d.Decode(&ev)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
		if visit != nil {
			visit(ev.ID, ev.Type, ev.Data)
		}
	}
}

// decodeGoSSE uses go-sse's sse.Read iterator, its public stream reader.
func decodeGoSSE(r io.Reader, visit func(id, typ, data string)) (int, error) {
	n := 0
	for ev, err := range gosse.Read(r, nil) {
		if err != nil {
			return n, err
		}
		n++
		if visit != nil {
			visit(ev.LastEventID, ev.Type, ev.Data)
		}
	}
	return n, nil
}

// decodeR3labsClient reads the stream through r3labs' Client.SubscribeRaw,
// the only public path that parses fields (Client.processEvent is
// unexported). The HTTP round trip is replaced by an in-memory
// RoundTripper, so no socket is used; what remains is one request per
// stream, the EventStreamReader, processEvent, and the hand-off of each
// event from the client's read goroutine over an unbuffered channel to the
// handler, all of which any user of the library pays.
func decodeR3labsClient(r io.Reader, visit func(id, typ, data string)) (int, error) {
	c := r3sse.NewClient("http://bench.invalid/events")
	c.Connection = &http.Client{Transport: bodyTransport{r}}
	c.ReconnectStrategy = &backoff.StopBackOff{}
	n := 0
	err := c.SubscribeRaw(func(ev *r3sse.Event) {
		n++
		if visit != nil {
			visit(string(ev.ID), string(ev.Event), string(ev.Data))
		}
	})
	return n, err
}

// bodyTransport answers every request with 200 and body as the
// text/event-stream body.
type bodyTransport struct{ body io.Reader }

func (t bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(t.body),
		Request:    req,
	}, nil
}

// decodeR3labsReader uses r3labs' public EventStreamReader alone. It only
// splits the stream into event blocks at blank lines, and parses no field,
// so it does less work than a decoder.
func decodeR3labsReader(r io.Reader, _ func(id, typ, data string)) (int, error) {
	er := r3sse.NewEventStreamReader(r, 1<<16)
	n := 0
	for {
		frame, err := er.ReadEvent()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if len(frame) > 0 {
			n++
		}
	}
}

// scanLines is the ceiling: a bufio.Scanner with ScanLines that finds every
// line and counts blank ones, with no field parsing and no copying.
func scanLines(r io.Reader, _ func(id, typ, data string)) (int, error) {
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			n++
		}
	}
	return n, sc.Err()
}

func TestDecode(t *testing.T) {
	for _, d := range decoders {
		t.Run(d.name, func(t *testing.T) {
			i, bad := 0, 0
			n, err := d.decode(bytes.NewReader(stream), func(id, typ, data string) {
				if bad < 3 && i < numEvents && (id != ids[i] || typ != eventType || data != datas[i]) {
					bad++
					t.Errorf("event %d = {%q %q %q}; want {%q %q %q}", i, id, typ, data, ids[i], eventType, datas[i])
				}
				i++
			})
			if err != nil || n != numEvents {
				t.Fatalf("decode = %d, %v; want %d, nil", n, err, numEvents)
			}
			if d.fields && i != numEvents {
				t.Errorf("visited %d events; want %d", i, numEvents)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, d := range decoders {
		b.Run("impl="+d.name, func(b *testing.B) {
			r := new(bytes.Reader)
			benchStream(b, func() {
				r.Reset(stream)
				n, err := d.decode(r, nil)
				if err != nil || n != numEvents {
					b.Fatalf("decode = %d, %v; want %d, nil", n, err, numEvents)
				}
			})
		})
	}
}
