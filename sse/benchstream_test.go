package sse

import "strconv"

// This file is self-contained (standard library only, no other symbol of
// this package) so that the comparison module in bench/ can copy it
// verbatim and benchmark other SSE parsers on exactly the same bytes.
//
// The benchmark stream holds benchStreamEvents events, for i = 0, 1, …,
// 9999, each written as four LF-terminated lines:
//
//	id: <i>
//	event: update
//	data: <json>
//	(blank line)
//
// where <i> is decimal without padding and <json> is exactly 100 bytes:
//
//	{"seq":<i>,"ts":1732550400000,"user":"u<i%97>","payload":"<x…x>"}
//
// with the payload string padded with 'x' until the whole JSON object is
// 100 bytes long. There is no BOM, no comment, no retry field and no CR;
// the stream ends with the blank line of the last event. Its length is
// 1,308,890 bytes.

// benchStreamEvents is the number of events in benchStream.
const benchStreamEvents = 10000

// benchJSONLen is the exact length of each event's data.
const benchJSONLen = 100

// benchStream returns the benchmark stream described above.
func benchStream() []byte {
	var b []byte
	for i := range benchStreamEvents {
		b = append(b, "id: "...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, "\nevent: update\ndata: "...)
		b = append(b, benchJSON(i)...)
		b = append(b, "\n\n"...)
	}
	return b
}

// benchJSON returns the data of event i: a JSON object of exactly
// benchJSONLen bytes.
func benchJSON(i int) []byte {
	j := []byte(`{"seq":`)
	j = strconv.AppendInt(j, int64(i), 10)
	j = append(j, `,"ts":1732550400000,"user":"u`...)
	j = strconv.AppendInt(j, int64(i%97), 10)
	j = append(j, `","payload":"`...)
	for len(j) < benchJSONLen-len(`"}`) {
		j = append(j, 'x')
	}
	return append(j, `"}`...)
}
