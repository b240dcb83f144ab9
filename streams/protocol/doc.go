// Package protocol is Sluice's record protocol in one place: every kind of
// record a replica, a caller or a gateway reads or writes on Kafka, each
// with its constructor and its parser, and the propagation rules that say
// which fields of an incoming request travel on each record it causes.
//
// Record kinds and their types:
//
//   - request records (ingress, dataflow edges, handle calls, forwarded
//     continuations): Request, whose headers are an Envelope;
//   - replies to a caller (unary, stream item, end of stream, error): Reply;
//   - results nobody waits for, on the application's output topic: Output;
//   - failed records nobody waits for: DeadLetter.
//
// Each type's Record method encodes it and its Parse function decodes it;
// Parse(x.Record()) gives x back. Parsers never panic, ignore headers they
// do not know, and fail with a *ParseError naming the header.
//
// Propagation: Edge, Forward and HandleCall build the request records an
// output or a handler's call becomes; UnaryReply, ItemReply, EndReply,
// ErrorReply, UnaryOutput, ItemOutput, EndOutput and NewDeadLetter the
// answers; Answer, End and Failure choose between a reply and an output or
// a dead letter as the request asks.
//
// docs/PROTOCOL.md is the contract for implementations in other languages,
// and conformance/ holds its language-neutral test cases. The package is a
// leaf: it imports franz-go's record type and nothing of the platform.
package protocol
