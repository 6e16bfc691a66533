package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"time"

	"github.com/ssehub/ssehub/hub"
	"github.com/ssehub/ssehub/sse"
	"github.com/ssehub/ssehub/store/memstore"
)

// A hub over an in-memory Log: publish two events, then subscribe from the
// start of history with Last-Event-ID 0 and receive both, replayed.
func Example() {
	log := memstore.New()
	defer log.Close()
	h := hub.New(log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()

	srv := httptest.NewServer(h)
	defer srv.Close()
	c := srv.Client()
	defer c.CloseIdleConnections()

	// Run starts tailing the Log asynchronously; /readyz tells when.
	for {
		resp, err := c.Get(srv.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(time.Millisecond)
	}

	for _, data := range []string{"hello", "world"} {
		resp, err := c.PostForm(srv.URL+"/events", url.Values{"topic": {"greetings"}, "data": {data}})
		if err != nil {
			fmt.Println(err)
			return
		}
		id, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("published %s", id) // the ID and a line break
	}

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/events?topic=greetings", nil)
	req.Header.Set("Last-Event-ID", "0")
	resp, err := c.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	dec := sse.NewDecoder(resp.Body)
	for range 2 {
		var ev sse.Event
		if err := dec.Decode(&ev); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("event %s: %s\n", ev.ID, ev.Data)
	}
	resp.Body.Close()

	h.Shutdown(ctx) // ends the streams
	cancel()
	fmt.Println("Run:", <-done)
	// Output:
	// published 1
	// published 2
	// event 1: hello
	// event 2: world
	// Run: <nil>
}

// A program that embeds the hub publishes without HTTP: Publish runs the
// checks of POST /events, and, with a grant in the context, its
// authorisation.
func ExampleHub_Publish() {
	log := memstore.New()
	defer log.Close()
	h := hub.New(log, nil)
	defer h.Close()
	ctx := context.Background()

	ids, err := h.Publish(ctx,
		hub.Event{Topics: []string{"orders/42"}, Type: "shipped", Data: `{"carrier":"ups"}`},
		hub.Event{Topics: []string{"orders/43"}, ID: "order-43-paid", Data: `{"paid":true}`})
	fmt.Println(ids, err)

	_, err = h.Publish(ctx, hub.Event{Topics: []string{"orders/42"}, Type: "bad\ntype"})
	fmt.Println(errors.Is(err, hub.ErrInvalidEvent), err)

	sel, _ := hub.ParseSelector("orders/42")
	asClerk := hub.WithGrant(ctx, &hub.Grant{Subject: "clerk", Publish: []hub.Selector{sel}})
	_, err = h.Publish(asClerk, hub.Event{Topics: []string{"orders/43"}, Data: "{}"})
	fmt.Println(errors.Is(err, hub.ErrForbidden), err)
	// Output:
	// [1 order-43-paid] <nil>
	// true hub: event 1: type contains CR, LF or NUL
	// true hub: the token may not publish to topic "orders/43"
}
