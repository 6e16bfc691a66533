package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// An Event is an event to publish with Hub.Publish: the fields of a
// publish request to /events.
type Event struct {
	// Topics are the topics the event is published to: at least one, each
	// a topic of the native API (see Selector).
	Topics []string
	// Data is the payload of a text event, valid UTF-8. It may not begin
	// with sse.BinaryPrefix, which marks binary events.
	Data string
	// Binary, when not nil, makes the event a binary one carrying these
	// bytes (an empty, non-nil slice is an empty payload): its data is
	// sse.BinaryData's, and a subscriber's sse.Event.Bytes gives Binary
	// back. Data must then be empty. See Limits.MaxBinaryBytes.
	Binary []byte
	// Media is the media type of Binary, such as image/png; empty means
	// sse.DefaultBinaryMediaType. It is set only with Binary.
	Media string
	// Type is the event type; empty means "message".
	Type string
	// ID is the event's ID; if empty, the hub assigns one. It must be
	// unique, and neither made only of digits nor begin with
	// "urn:ssehub:": those are the forms of the IDs the hub assigns.
	ID string
	// Retry, when positive, is sent to subscribers as the event's retry
	// field, in whole milliseconds.
	Retry time.Duration
	// Private events go only to subscribers whose grant allows them.
	Private bool
}

// grantKey is the context key of WithGrant.
type grantKey struct{}

// WithGrant returns a copy of ctx in which Publish acts for the bearer
// of g, a grant its caller obtained from a TokenVerifier: Publish then
// authorises the events as the HTTP endpoint authorises a request with
// that token.
func WithGrant(ctx context.Context, g *Grant) context.Context {
	return context.WithValue(ctx, grantKey{}, g)
}

// grantFrom returns the grant WithGrant put in ctx, or nil.
func grantFrom(ctx context.Context) *Grant {
	g, _ := ctx.Value(grantKey{}).(*Grant)
	return g
}

// Publish publishes events as POST /events does, as one batch, and
// returns their IDs in order, once they are durable in the Log. It runs
// the same checks: each event's fields (the same limits, no CR, LF or
// NUL in ID or type, no text data beginning with sse.BinaryPrefix, and,
// for a binary event, Limits.MaxBinaryBytes on Binary and
// Limits.MaxEventBytes on its data, encoded), and, when ctx carries a
// grant (see WithGrant), its
// publish selectors and rate. Without a grant, the caller is trusted as
// the program that runs the Hub: any topic may be published to. Publish
// does not need Run to be running; subscribers receive the events once
// it is. It is safe for concurrent use.
//
// Its errors wrap ErrInvalidEvent, ErrForbidden, ErrRateLimited,
// ErrDuplicateID or ErrUnavailable, and say what is wrong; nothing is
// published then, except that after ErrUnavailable the batch may or may
// not have been appended (see Log.Append).
func (h *Hub) Publish(ctx context.Context, events ...Event) ([]string, error) {
	return h.publishEvents(ctx, nativeDialect, events)
}

// PublishMercure is Publish for events of the Mercure endpoint, checked
// as POST /.well-known/mercure checks them: topics are opaque strings
// (IRIs as a rule), none inside /.well-known/mercure (ErrForbidden), and
// no ID begins with "#". The IDs it returns are shown as the Mercure
// endpoint shows them: "urn:ssehub:<position>" for those the hub
// assigns. A grant in ctx is read as a Mercure token's.
func (h *Hub) PublishMercure(ctx context.Context, events ...Event) ([]string, error) {
	return h.publishEvents(ctx, mercureDialect, events)
}

// publishEvents is Publish for the endpoint of dialect d.
func (h *Hub) publishEvents(ctx context.Context, d *dialect, events []Event) ([]string, error) {
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: no event", ErrInvalidEvent)
	}
	recs := make([]Record, len(events))
	invalid := func(i int, err error) error {
		status := http.StatusBadRequest
		if ie, ok := errors.AsType[*inputError](err); ok && ie.tooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		h.m.publishes.WithLabelValues(outcomeInvalid).Inc()
		return &publishError{kind: ErrInvalidEvent, status: status, outcome: outcomeInvalid,
			detail: fmt.Sprintf("event %d: %s", i+1, err)}
	}
	for i, ev := range events {
		switch {
		case ev.Retry < 0 || ev.Retry > maxRetryMS*time.Millisecond:
			return nil, fmt.Errorf("%w: event %d: %s", ErrInvalidEvent, i+1, retryError())
		case ev.Binary != nil && ev.Data != "":
			return nil, invalid(i, badInput("Data and Binary are both set: an event carries text or bytes, not both"))
		case ev.Binary == nil && ev.Media != "":
			return nil, invalid(i, badInput("Media is set without Binary: it is the media type of a binary payload"))
		}
		recs[i] = Record{
			Topics:  append([]string(nil), ev.Topics...),
			Data:    ev.Data,
			Type:    ev.Type,
			ID:      ev.ID,
			Retry:   ev.Retry.Truncate(time.Millisecond),
			Private: ev.Private,
		}
		if ev.Binary != nil {
			if err := h.lim.setBinary(&recs[i], ev.Binary, ev.Media); err != nil {
				return nil, invalid(i, err)
			}
		}
		if d == mercureDialect {
			if err := checkMercure(&recs[i]); err != nil {
				pe := *err
				pe.detail = fmt.Sprintf("event %d: %s", i+1, pe.detail)
				h.m.publishes.WithLabelValues(pe.outcome).Inc()
				return nil, &pe
			}
		}
		if err := h.lim.check(d, &recs[i], ev.Binary != nil); err != nil {
			return nil, invalid(i, err)
		}
	}
	if err := h.publish(ctx, grantFrom(ctx), recs); err != nil {
		if pe, ok := errors.AsType[*publishError](err); ok {
			h.m.publishes.WithLabelValues(pe.outcome).Inc()
		}
		return nil, err
	}
	ids := make([]string, len(recs))
	for i := range recs {
		ids[i] = d.showID(recs[i].ID)
	}
	return ids, nil
}
