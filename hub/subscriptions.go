package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mercure's active subscriptions (MercureOptions.Subscriptions).
//
// Each node announces its own Mercure subscriptions in the Log, and
// learns everyone's by tailing it, so that every node of a cluster
// answers the subscriptions API with the subscriptions of every node:
//
//   - A subscription's start and end are private updates, as Mercure
//     publishes them: one per topic selector of the subscription, with
//     the topic /.well-known/mercure/subscriptions/{topic}/{subscriber}
//     and a JSON-LD Subscription document as data. Each also has the
//     alternate topic /.well-known/mercure/nodes/{node}, which says which
//     node holds the subscription; no publisher can publish to either
//     (the native syntax refuses a leading "/", the Mercure endpoint any
//     topic inside /.well-known/mercure).
//   - Each node appends a node record (type ssehub-node, never delivered
//     to a subscriber) when it starts ("sync": every other node answers
//     with a "snapshot" of its subscriptions, so the new node knows them
//     all), every MercureOptions.NodeHeartbeat ("heartbeat"), and when it stops ("bye",
//     after an end update for each of its subscriptions).
//   - A node not heard from for three heartbeats is dead: its subscriptions
//     disappear from the API, and an end update is published for each,
//     once, whichever nodes notice (the updates' IDs are derived from
//     the dead node's, so the Log refuses the second copy).
//
// One goroutine per node, the announcer, appends its records in order,
// so that a snapshot and the updates around it apply in the order they
// happened. The view of all the nodes' subscriptions is applied by the
// fan-out, on Run's goroutine, from the records as they are tailed.

// Paths, topics and types of the active subscriptions.
const (
	subscriptionsPath = MercurePath + "/subscriptions"
	nodesTopic        = MercurePath + "/nodes/"
	nodeEventType     = reservedTypePrefix + "node"
	mercureContext    = "https://mercure.rocks/"
	// snapshotPart is the most subscriptions one snapshot record holds.
	snapshotPart = 200
	// maxAnnounceQueue is the most updates a node keeps while its Log
	// is failing; past it, it drops them and sends a snapshot instead
	// once the Log is back.
	maxAnnounceQueue = 10000
)

// A subscriptionDoc is a Subscription, in Mercure's JSON-LD.
type subscriptionDoc struct {
	Context    string          `json:"@context,omitempty"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Topic      string          `json:"topic"`
	Subscriber string          `json:"subscriber"`
	Active     bool            `json:"active"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	LastEvent  string          `json:"lastEventID,omitempty"` // in the API's answer for one subscription
}

// A nodeMsg is the data of a node record.
type nodeMsg struct {
	Op            string            `json:"op"` // heartbeat, sync, snapshot or bye
	Part          int               `json:"part,omitempty"`
	Subscriptions []subscriptionDoc `json:"subscriptions,omitempty"`
}

// activeSubs keeps a node's Mercure subscriptions announced in the Log,
// and its view of every node's.
type activeSubs struct {
	h         *Hub
	node      string // this node's ID, new for each Hub
	heartbeat time.Duration
	deadAfter time.Duration
	grace     time.Duration
	nodeTopic string
	wake      chan struct{} // 1-slot: something to announce

	mu      sync.Mutex                 // guards the fields below
	queue   []subscriptionDoc          // updates to append, in order
	current map[string]subscriptionDoc // this node's subscriptions now, by document ID
	dropped bool                       // updates were dropped: a snapshot is due

	wantSnapshot atomic.Bool // another node asked for a snapshot
	wantSync     atomic.Bool // a node unknown to the view was heard from: ask everyone for a snapshot
	last         atomic.Uint64

	vmu      sync.RWMutex // guards the fields below
	nodes    map[string]*nodeView
	syncedAt time.Time // when this node's sync record came back; zero until then
}

// A nodeView is what a node knows of another's subscriptions.
type nodeView struct {
	seen time.Time                  // when the node was last heard from, on this node's clock
	subs map[string]subscriptionDoc // by document ID
}

func newActiveSubs(h *Hub) *activeSubs {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	node := hex.EncodeToString(b[:])
	return &activeSubs{
		h:         h,
		node:      node,
		heartbeat: h.opts.Mercure.NodeHeartbeat,
		deadAfter: 3 * h.opts.Mercure.NodeHeartbeat,
		// How long after its own sync record a node waits for the
		// others' snapshots before it answers the subscriptions API.
		grace:     min(h.opts.Mercure.NodeHeartbeat/2, time.Second),
		nodeTopic: nodesTopic + node,
		wake:      make(chan struct{}, 1),
		current:   make(map[string]subscriptionDoc),
		nodes:     make(map[string]*nodeView),
	}
}

// newSubscriberID returns a new subscriber IRI, a random (version 4)
// UUID URN, as Mercure's.
func newSubscriberID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return "urn:uuid:" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// subscriptionID returns the ID of the Subscription of subscriber to
// the selector topic, which is also the topic of its updates.
func subscriptionID(topic, subscriber string) string {
	return subscriptionsPath + "/" + url.QueryEscape(topic) + "/" + url.QueryEscape(subscriber)
}

// docs returns the Subscriptions of s, one per selector.
func (s *subscriber) docs(active bool) []subscriptionDoc {
	var payload json.RawMessage
	if s.grant != nil {
		payload = s.grant.Payload
	}
	docs := make([]subscriptionDoc, len(s.sels))
	for i, sel := range s.sels {
		docs[i] = subscriptionDoc{
			Context: mercureContext, ID: subscriptionID(sel.String(), s.subscriberID), Type: "Subscription",
			Topic: sel.String(), Subscriber: s.subscriberID, Active: active, Payload: payload,
		}
	}
	return docs
}

// started announces that s, registered, has started.
func (a *activeSubs) started(s *subscriber) { a.push(s.docs(true)) }

// ended announces that s has ended.
func (a *activeSubs) ended(s *subscriber) { a.push(s.docs(false)) }

// push queues updates for the announcer, without blocking.
func (a *activeSubs) push(docs []subscriptionDoc) {
	a.mu.Lock()
	for _, d := range docs {
		if d.Active {
			a.current[d.ID] = d
		} else {
			delete(a.current, d.ID)
		}
	}
	if len(a.queue)+len(docs) > maxAnnounceQueue {
		a.queue, a.dropped = nil, true
	} else {
		a.queue = append(a.queue, docs...)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// run is the announcer: it appends this node's records until ctx is
// done, then its end updates and its bye. Run owns it.
func (a *activeSubs) run(ctx context.Context) {
	a.appendRetry(ctx, a.nodeRecord(nodeMsg{Op: "sync"}))
	tick := time.NewTicker(a.heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			a.farewell()
			return
		case <-a.wake:
		case <-tick.C:
			a.appendRetry(ctx, a.nodeRecord(nodeMsg{Op: "heartbeat"}))
			a.sweep(ctx)
		}
		if a.wantSync.Swap(false) {
			a.appendRetry(ctx, a.nodeRecord(nodeMsg{Op: "sync"}))
		}
		a.flush(ctx)
		if a.wantSnapshot.Swap(false) {
			a.sendSnapshot(ctx)
		}
	}
}

// flush appends the queued updates, in order, as one batch, or as a
// snapshot if some were dropped. On failure it keeps them, for the next
// wake or tick to retry.
func (a *activeSubs) flush(ctx context.Context) {
	a.mu.Lock()
	q, dropped := a.queue, a.dropped
	a.queue, a.dropped = nil, false
	a.mu.Unlock()
	if dropped {
		a.sendSnapshot(ctx)
		return
	}
	if rest, err := a.appendUpdates(ctx, q, "", nil); err != nil {
		a.mu.Lock()
		a.queue = append(rest, a.queue...)
		if len(a.queue) > maxAnnounceQueue {
			a.queue, a.dropped = nil, true
		}
		a.mu.Unlock()
	}
}

// appendUpdates appends the updates docs, of node ("" for this one), in
// order, in batches of at most snapshotPart records. With batchID, the
// first record of batch k has the ID batchID(k), and a batch the Log
// already holds (ErrDuplicateID: another node appended it) is skipped.
// It returns the docs it did not append and the error that stopped it.
func (a *activeSubs) appendUpdates(ctx context.Context, docs []subscriptionDoc, node string, batchID func(k int) string) ([]subscriptionDoc, error) {
	for k := 0; len(docs) > 0; k++ {
		n := min(len(docs), snapshotPart)
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = a.updateRecord(docs[i], node)
		}
		if batchID != nil {
			recs[0].ID = batchID(k)
		}
		if err := a.append(ctx, recs); err != nil && (batchID == nil || !errors.Is(err, ErrDuplicateID)) {
			return docs, err
		}
		docs = docs[n:]
	}
	return nil, nil
}

// sortDocs sorts docs by ID, so that every node makes the same batches
// of the same subscriptions.
func sortDocs(docs []subscriptionDoc) {
	slices.SortFunc(docs, func(x, y subscriptionDoc) int { return strings.Compare(x.ID, y.ID) })
}

// sendSnapshot appends this node's subscriptions now, in parts.
func (a *activeSubs) sendSnapshot(ctx context.Context) {
	a.mu.Lock()
	docs := make([]subscriptionDoc, 0, len(a.current))
	for _, d := range a.current {
		d.Context = ""
		docs = append(docs, d)
	}
	a.mu.Unlock()
	sortDocs(docs)
	for part := 0; part == 0 || len(docs) > 0; part++ {
		n := min(len(docs), snapshotPart)
		if err := a.appendRetry(ctx, a.nodeRecord(nodeMsg{Op: "snapshot", Part: part, Subscriptions: docs[:n]})); err != nil {
			return
		}
		docs = docs[n:]
	}
}

// sweep forgets the nodes not heard from for a.deadAfter, and
// publishes an end update for each of their subscriptions.
func (a *activeSubs) sweep(ctx context.Context) {
	now := time.Now()
	type dead struct {
		node string
		docs []subscriptionDoc
	}
	var gone []dead
	a.vmu.Lock()
	for node, v := range a.nodes {
		if node == a.node || now.Sub(v.seen) < a.deadAfter {
			continue
		}
		d := dead{node: node}
		for _, doc := range v.subs {
			doc.Active = false
			d.docs = append(d.docs, doc)
		}
		delete(a.nodes, node)
		gone = append(gone, d)
	}
	a.vmu.Unlock()
	for _, d := range gone {
		a.h.logger.Warn("mercure subscriptions: node not heard from; its subscriptions end", "node", d.node, "subscriptions", len(d.docs))
		sortDocs(d.docs)
		// Every node that notices publishes the same batches: the ID of
		// each one's first record lets the Log keep one copy.
		batchID := func(k int) string { return positionIRI + "gone:" + d.node + ":" + strconv.Itoa(k) }
		if _, err := a.appendUpdates(ctx, d.docs, d.node, batchID); err != nil {
			a.h.logger.Warn("mercure subscriptions: cannot publish the end of a dead node's subscriptions", "node", d.node, "err", err)
		}
	}
}

// farewell appends, after Run's ctx is done, the updates still queued,
// an end update for each of this node's subscriptions, and a bye, so
// that the other nodes forget them at once. It gives up after a few
// seconds.
func (a *activeSubs) farewell() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	a.flush(ctx)
	a.mu.Lock()
	docs := make([]subscriptionDoc, 0, len(a.current))
	for _, d := range a.current {
		d.Active = false
		docs = append(docs, d)
	}
	clear(a.current)
	a.queue = nil
	a.mu.Unlock()
	sortDocs(docs)
	_, _ = a.appendUpdates(ctx, docs, "", nil) // the bye covers what fails
	_ = a.append(ctx, []Record{a.nodeRecord(nodeMsg{Op: "bye"})})
}

// updateRecord returns the record of the update doc, of the node (this
// one if empty).
func (a *activeSubs) updateRecord(doc subscriptionDoc, node string) Record {
	topic := a.nodeTopic
	if node != "" {
		topic = nodesTopic + node
	}
	doc.Context, doc.LastEvent = mercureContext, ""
	data, _ := json.Marshal(doc) // strings and raw JSON: cannot fail
	return Record{Topics: []string{doc.ID, topic}, Data: string(data), Private: true}
}

// nodeRecord returns a node record of this node.
func (a *activeSubs) nodeRecord(m nodeMsg) Record {
	data, _ := json.Marshal(m) // cannot fail
	return Record{Topics: []string{a.nodeTopic}, Type: nodeEventType, Data: string(data), Private: true}
}

// append appends recs, bounded by the store timeout.
func (a *activeSubs) append(ctx context.Context, recs []Record) error {
	ctx, cancel := context.WithTimeout(ctx, a.h.opts.StoreTimeout)
	defer cancel()
	t0 := time.Now()
	err := a.h.log.Append(ctx, recs)
	a.h.m.observeStore(opAppend, t0, err)
	return err
}

// appendRetry appends rec, retrying with backoff until it succeeds or
// ctx is done.
func (a *activeSubs) appendRetry(ctx context.Context, rec Record) error {
	b := backoff{min: a.h.opts.RetryBackoff / 20, max: a.h.opts.RetryBackoff}
	for {
		err := a.append(ctx, []Record{rec})
		if err == nil || ctx.Err() != nil {
			return err
		}
		a.h.logger.Warn("mercure subscriptions: cannot append", "err", err)
		if !sleep(ctx, b.next()) {
			return ctx.Err()
		}
	}
}

// apply applies rec, tailed from the Log, to the view. It runs on Run's
// goroutine, for every record, before the record is delivered.
func (a *activeSubs) apply(rec *Record) {
	defer a.last.Store(rec.Pos)
	if len(rec.Topics) == 0 || !strings.HasPrefix(rec.Topics[0], MercurePath+"/") {
		return
	}
	switch {
	case rec.Type == nodeEventType && strings.HasPrefix(rec.Topics[0], nodesTopic):
		a.applyNode(strings.TrimPrefix(rec.Topics[0], nodesTopic), rec.Data)
	case len(rec.Topics) == 2 && strings.HasPrefix(rec.Topics[0], subscriptionsPath+"/") && strings.HasPrefix(rec.Topics[1], nodesTopic):
		var doc subscriptionDoc
		if json.Unmarshal([]byte(rec.Data), &doc) != nil || doc.ID != rec.Topics[0] {
			return
		}
		node := strings.TrimPrefix(rec.Topics[1], nodesTopic)
		a.vmu.Lock()
		defer a.vmu.Unlock()
		v := a.nodes[node]
		switch {
		case doc.Active && v == nil:
			v = &nodeView{seen: time.Now(), subs: make(map[string]subscriptionDoc)}
			a.nodes[node] = v
			fallthrough
		case doc.Active:
			doc.Context = ""
			v.subs[doc.ID] = doc
		case v != nil:
			delete(v.subs, doc.ID)
		}
	}
}

// applyNode applies the node record data of node.
func (a *activeSubs) applyNode(node, data string) {
	var m nodeMsg
	if json.Unmarshal([]byte(data), &m) != nil {
		return
	}
	a.vmu.Lock()
	defer a.vmu.Unlock()
	v := a.nodes[node]
	if m.Op == "bye" {
		delete(a.nodes, node)
		return
	}
	if v == nil {
		v = &nodeView{subs: make(map[string]subscriptionDoc)}
		a.nodes[node] = v
		if m.Op == "heartbeat" && node != a.node {
			// A node this one does not know (it started before this
			// one, or was taken for dead): ask for everyone's.
			a.wantSync.Store(true)
			a.wakeUp()
		}
	}
	v.seen = time.Now()
	switch m.Op {
	case "sync":
		if node == a.node {
			if a.syncedAt.IsZero() {
				a.syncedAt = time.Now()
			}
			return
		}
		a.wantSnapshot.Store(true)
		a.wakeUp()
	case "snapshot":
		if m.Part == 0 {
			clear(v.subs)
		}
		for _, d := range m.Subscriptions {
			v.subs[d.ID] = d
		}
	}
}

func (a *activeSubs) wakeUp() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// synced reports whether the view is complete: this node's sync record
// came back a.grace ago.
func (a *activeSubs) synced() bool {
	a.vmu.RLock()
	defer a.vmu.RUnlock()
	return !a.syncedAt.IsZero() && time.Since(a.syncedAt) >= a.grace
}

// list returns the active subscriptions of every node, by ID, that
// match topic (any if empty) and subscriber (any if empty) and whose
// IDs grant allows (all if grant is nil).
func (a *activeSubs) list(topic, subscriber string, grant *Grant) []subscriptionDoc {
	a.vmu.RLock()
	var docs []subscriptionDoc
	for _, v := range a.nodes {
		for _, d := range v.subs {
			if (topic == "" || d.Topic == topic) && (subscriber == "" || d.Subscriber == subscriber) &&
				(grant == nil || MatchAny(grant.Subscribe, []string{d.ID})) {
				docs = append(docs, d)
			}
		}
	}
	a.vmu.RUnlock()
	sortDocs(docs)
	return docs
}

// MercureSubscriptionsHandler returns the handler of Mercure's
// subscriptions API, which ServeHTTP serves under
// /.well-known/mercure/subscriptions: GET of the collection of every
// active subscription, of those to one topic selector, or of one
// subscriber's to one selector. It reads the selector and the subscriber
// from the request's path values "topic" and "subscriber", as an
// http.ServeMux pattern sets them:
//
//	mux.Handle("GET /.well-known/mercure/subscriptions", h.MercureSubscriptionsHandler())
//	mux.Handle("GET /.well-known/mercure/subscriptions/{topic}", h.MercureSubscriptionsHandler())
//	mux.Handle("GET /.well-known/mercure/subscriptions/{topic}/{subscriber}", h.MercureSubscriptionsHandler())
//
// Each answer is application/ld+json and holds lastEventID, the ID of
// the last event the view reflects: subscribing to the subscription
// updates from there misses none. It needs a Mercure token whose
// subscribe selectors match the requested document's ID (401 without a
// token, 403 when they do not), unless the hub is open, and lists only
// the subscriptions whose IDs the token's selectors match. It answers
// 404 when MercureOptions.Subscriptions is off, and 503 while a node
// that has just started waits for the others' subscriptions.
func (h *Hub) MercureSubscriptionsHandler() http.Handler {
	return http.HandlerFunc(h.serveSubscriptions)
}

func (h *Hub) serveSubscriptions(w http.ResponseWriter, r *http.Request) {
	if !h.checkOrigin(w, r) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeProblem(w, http.StatusMethodNotAllowed, "the subscriptions API is read with GET", nil)
		return
	}
	a := h.active
	if a == nil {
		writeProblem(w, http.StatusNotFound, "the subscriptions API is off", nil)
		return
	}
	topic, subscriber := r.PathValue("topic"), r.PathValue("subscriber")
	id := subscriptionsPath
	switch {
	case subscriber != "":
		id = subscriptionID(topic, subscriber)
	case topic != "":
		id += "/" + url.QueryEscape(topic)
	}
	grant, ok := h.mercureAuthenticate(w, r, mercureReader)
	if !ok {
		return
	}
	if grant != nil && !MatchAny(grant.Subscribe, []string{id}) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ssehub", error="insufficient_scope"`)
		writeProblem(w, http.StatusForbidden, "the token may not read "+strconv.Quote(id), nil)
		return
	}
	if !a.synced() {
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, "this node is still learning the other nodes' subscriptions", nil)
		return
	}
	last := mercureDialect.showPos(a.last.Load())
	etag := strconv.Quote(last)
	hd := w.Header()
	hd.Set("ETag", etag)
	hd.Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	docs := a.list(topic, subscriber, grant)
	var body any
	if subscriber != "" {
		if len(docs) == 0 {
			writeProblem(w, http.StatusNotFound, "no such subscription", nil)
			return
		}
		d := docs[0]
		d.Context, d.LastEvent = mercureContext, last
		body = d
	} else {
		if docs == nil {
			docs = []subscriptionDoc{}
		}
		body = struct {
			Context       string            `json:"@context"`
			ID            string            `json:"id"`
			Type          string            `json:"type"`
			LastEventID   string            `json:"lastEventID"`
			Subscriptions []subscriptionDoc `json:"subscriptions"`
		}{mercureContext, id, "Subscriptions", last, docs}
	}
	b, err := json.Marshal(body)
	if err != nil {
		h.logger.Error("subscriptions API: cannot encode", "err", err)
		writeProblem(w, http.StatusInternalServerError, "cannot encode the subscriptions", nil)
		return
	}
	hd.Set("Content-Type", "application/ld+json")
	hd.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}
