package gateway

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/protocol"
)

// Every code maps to a distinct HTTP status and gRPC code, and back.
func TestCodeTable(t *testing.T) {
	t.Parallel()
	seenHTTP, seenGRPC := map[int]bool{}, map[codes.Code]bool{}
	for _, row := range codeTable {
		if seenHTTP[row.http] || seenGRPC[row.grpc] {
			t.Fatalf("code %q shares its HTTP %d or gRPC %v with another", row.code, row.http, row.grpc)
		}
		seenHTTP[row.http], seenGRPC[row.grpc] = true, true
		if HTTPStatus(row.code) != row.http || GRPCCode(row.code) != row.grpc || codeOf(row.grpc) != row.code {
			t.Fatalf("code %q does not round-trip", row.code)
		}
	}
	for _, c := range protocol.Codes { // every code of the protocol has its row
		if !slices.ContainsFunc(codeTable, func(row codeRow) bool { return row.code == c }) {
			t.Errorf("protocol code %q has no row in the gateway's table", c)
		}
	}
	if HTTPStatus("made_up") != 500 || GRPCCode("made_up") != codes.Internal || codeOf(codes.OutOfRange) != streams.CodeInvalidArgument {
		t.Fatal("unknown codes must fold into internal, and OutOfRange into invalid_argument")
	}
}
