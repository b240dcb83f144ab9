package gateway

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/sluice-serve/sluice/streams"
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
	if HTTPStatus("made_up") != 500 || GRPCCode("made_up") != codes.Internal || codeOf(codes.OutOfRange) != streams.CodeInvalidArgument {
		t.Fatal("unknown codes must fold into internal, and OutOfRange into invalid_argument")
	}
}
