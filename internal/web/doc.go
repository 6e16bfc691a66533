// Package web serves the hub's console page: one page of plain HTML, CSS and
// JavaScript, with no build step, that subscribes to topics with the
// browser's own EventSource, shows its readyState and the events as they
// arrive, charts the event rate, and publishes events. A binary event
// (see package sse) is shown by its media type and size, with a preview
// when it is an image; the page decodes it with binary.js, which it
// serves too, the snippet docs/BINARY.md gives for any page.
//
// The page reaches the hub's API through URLs relative to itself
// ("events"), so it works at any base path, as long as that path ends in a
// slash and the hub's API is served next to it:
//
//	mux := http.NewServeMux()
//	mux.Handle("/events", hubHandler) // GET subscribes, POST publishes
//	mux.Handle("/", web.Handler())    // the console page and its assets
//
// Behind a prefix, strip it and keep the trailing slash:
//
//	mux.Handle("/console/", http.StripPrefix("/console", web.Handler()))
//
// A subscriber may give the page a token, to receive private events. An
// EventSource cannot set headers, and a token in the URL would be written
// into access logs, so the page sends it in the hub's token cookie, which
// it scopes to the events URL; Options.TokenCookie names the cookie when
// the hub reads another one than the default:
//
//	mux.Handle("/", web.NewHandler(&web.Options{TokenCookie: "my_token"}))
//
// The page, its script and its style sheet are embedded in the binary. They
// are sent with a strict Content-Security-Policy (no inline script or style;
// every fetch, stream, script, style and image comes from the page's own
// origin, images from blob: URLs too, the page's previews), and event data
// is always shown as text, never parsed as HTML.
package web
