package serve

import (
	"context"
	"log/slog"

	"github.com/sluice-serve/sluice/streams/tracing"
)

// Logger returns the process's logger (slog.Default) with the request_id
// and trace_id of the request being served, so a handler's lines can be
// found beside the replica's and the gateway's for the same request. Out
// of a request it is slog.Default itself.
func Logger(ctx context.Context) *slog.Logger {
	sc, ok := ctx.Value(scopeKey{}).(*scope)
	if !ok {
		return slog.Default()
	}
	return slog.Default().With("request_id", sc.parent.ID, "trace_id", tracing.TraceID(sc.parent.Trace))
}
