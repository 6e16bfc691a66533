package hub

import "net/http"

// MercurePath is where ServeHTTP serves the Mercure endpoint, the path
// draft-dunglas-mercure-07 fixes for a hub.
const MercurePath = "/.well-known/mercure"

// MercureHandler returns the handler of the Mercure endpoint, which
// ServeHTTP serves at MercurePath: GET subscribes and POST publishes, as
// draft-dunglas-mercure-07 says. It routes on the method alone.
func (h *Hub) MercureHandler() http.Handler { return http.HandlerFunc(h.serveMercure) }

func (h *Hub) serveMercure(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, http.StatusNotImplemented, "the Mercure endpoint is not built yet", nil)
}
