// Command otlpsink is an OTLP/HTTP trace receiver in a process of its
// own, standing in for a collector: it walks every export it is sent
// down to its spans (the protobuf wire format, each field checked, no
// message built), counts them and drops them. It listens on a free loopback port,
// prints "http://<addr>" on stdout, and answers GET /count with the
// number of spans received so far. BenchmarkTraceOverhead sends its
// spans here so that the receiving end's work is not counted as the
// platform's, as it would not be in production. It walks rather than
// unmarshals because it shares the benchmark's cores: a full decode
// (every span built as a message) took about 40 µs of CPU a traced
// request, a sixth of what the platform spends on the request, from the
// platform's throughput.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"

	"google.golang.org/protobuf/encoding/protowire"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "otlpsink:", err)
		os.Exit(1)
	}
}

func run() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var spans atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		var n int64
		if err == nil {
			n, err = countSpans(b)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		spans.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strconv.FormatInt(spans.Load(), 10))
	})
	fmt.Println("http://" + ln.Addr().String())
	return http.Serve(ln, mux)
}

// The field numbers on the path from an export to its spans:
// ExportTraceServiceRequest.resource_spans, ResourceSpans.scope_spans,
// ScopeSpans.spans (opentelemetry-proto, trace/v1).
const (
	fieldResourceSpans = 1
	fieldScopeSpans    = 2
	fieldSpans         = 2
)

// countSpans counts the spans of an ExportTraceServiceRequest.
func countSpans(b []byte) (int64, error) {
	var n int64
	err := eachField(b, fieldResourceSpans, func(rs []byte) error {
		return eachField(rs, fieldScopeSpans, func(ss []byte) error {
			return eachField(ss, fieldSpans, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls fn with the bytes of every length-delimited field num
// of message b, and checks that every field of b is well formed.
func eachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return protowire.ParseError(l)
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
	}
	return nil
}
