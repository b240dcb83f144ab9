// Package cel is the one CEL environment of Sluice's rules: conditions on
// graph edges, transforms that build the next deployment's payload,
// traffic splits and gateway routes. It compiles a rule once, with type
// checks, caches the program, and evaluates it against an Input under a
// cost limit.
//
// The environment is fixed: the variables request, body, inputs, app,
// deployment and upstream; CEL's standard library; the strings extension
// (version 5); optional values (version 3); and bucket(key, n). docs/CEL.md
// is the reference for rule authors.
package cel

import (
	"fmt"
	"sync"

	celgo "cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
)

// Limits every rule runs under.
const (
	// CostLimit bounds one evaluation, in cel-go's cost units: about one
	// per operation, plus a tenth of the length of the strings functions
	// walk and the length of the lists `in` searches or `+` builds (see
	// dynCost). An evaluation that exceeds it fails with ErrRule.
	CostLimit = 1_000_000

	// MaxExprSize is the longest rule text Compile accepts, in code points.
	MaxExprSize = 32 << 10

	// MaxJSONSize bounds the JSON a rule's value may encode to.
	MaxJSONSize = 16 << 20

	// interruptEvery is how many comprehension iterations pass between
	// checks of the context.
	interruptEvery = 100
)

// The variable names of the environment.
const (
	varRequest    = "request"
	varBody       = "body"
	varInputs     = "inputs"
	varApp        = "app"
	varDeployment = "deployment"
	varUpstream   = "upstream"
)

// environment returns the environment every rule compiles in, built once.
var environment = sync.OnceValues(newEnv)

func newEnv() (*celgo.Env, error) {
	reg, err := newRegistry()
	if err != nil {
		return nil, err
	}
	return celgo.NewEnv(
		celgo.CustomTypeProvider(reg),
		celgo.CustomTypeAdapter(reg),
		celgo.Variable(varRequest, requestType),
		celgo.Variable(varBody, celgo.DynType),
		celgo.Variable(varInputs, celgo.MapType(celgo.StringType, tensorType)),
		celgo.Variable(varApp, celgo.StringType),
		celgo.Variable(varDeployment, celgo.StringType),
		celgo.Variable(varUpstream, upstreamType),
		celgo.Function("bucket",
			celgo.Overload("bucket_string_int",
				[]*celgo.Type{celgo.StringType, celgo.IntType}, celgo.IntType,
				celgo.BinaryBinding(bucketBinding))),
		ext.Strings(ext.StringsVersion(5)),
		celgo.OptionalTypes(celgo.OptionalTypesVersion(3)),
		celgo.CrossTypeNumericComparisons(true),
		celgo.ParserExpressionSizeLimit(MaxExprSize),
		celgo.ASTValidators(
			celgo.ValidateDurationLiterals(),
			celgo.ValidateTimestampLiterals(),
			celgo.ValidateRegexLiterals(),
			noStructLiterals{},
		),
	)
}

// noStructLiterals rejects message construction (T{field: value}): rules
// read Sluice's struct types but cannot build them, and have no use for
// protobuf messages.
type noStructLiterals struct{}

func (noStructLiterals) Name() string { return "sluice.no_struct_literals" }

func (noStructLiterals) Validate(_ *celgo.Env, _ celgo.ValidatorConfig, a *ast.AST, iss *celgo.Issues) {
	for _, e := range ast.MatchDescendants(ast.NavigateAST(a), ast.KindMatcher(ast.StructKind)) {
		iss.ReportErrorAtID(e.ID(), "%s{...}: rules cannot construct messages", e.AsStruct().TypeName())
	}
}

// dynCost adds to cel-go's cost model what it leaves out, so that the
// cost limit bounds the work and memory of a rule:
//
//   - Calls the checker could not resolve to one overload, because an
//     argument is dyn (a field of body, say), cost 1 whatever their
//     arguments. They are charged as their typed overloads are: body.s +
//     body.s by the length of the result, x in body.list by the length of
//     the list, comparisons of strings by the shorter one. Without this, a
//     rule doubling a JSON string in nested comprehensions would exhaust
//     memory long before the limit.
//   - List concatenation costs 1 because cel-go concatenates lazily, but
//     reading the result later costs its length times the depth of
//     concatenations; doubling a list 40 times would cost 40 and take
//     hours to encode. It is charged the length of the result.
type dynCost struct{}

// CallCost implements cost.ActualCostEstimator.
func (dynCost) CallCost(function, overloadID string, args []ref.Val, result ref.Val) *uint64 {
	if len(args) != 2 {
		return nil
	}
	var c uint64
	switch function {
	case operators.Add:
		if l, ok := result.(traits.Lister); ok {
			c = length(l)
			break
		}
		if overloadID != "" {
			return nil
		}
		c = traversal(size(result))
	case operators.In:
		if overloadID != "" {
			return nil
		}
		if l, ok := args[1].(traits.Lister); ok {
			c = length(l)
		}
	case operators.Less, operators.LessEquals, operators.Greater, operators.GreaterEquals:
		if overloadID != "" {
			return nil
		}
		c = traversal(min(size(args[0]), size(args[1])))
	default:
		return nil
	}
	return charge(max(c, 1))
}

// charge returns a cost for the tracker, which reads it at once: only the
// calls dynCost prices allocate it.
func charge(c uint64) *uint64 { return &c }

// length is the number of elements of l.
func length(l traits.Lister) uint64 {
	if n, ok := l.Size().(types.Int); ok && n > 0 {
		return uint64(n)
	}
	return 0
}

// size is the length of a string or bytes value, else 0.
func size(v ref.Val) int {
	switch v := v.(type) {
	case types.String:
		return len(v)
	case types.Bytes:
		return len(v)
	}
	return 0
}

// traversal is cel-go's cost of walking n bytes: a tenth, rounded up.
func traversal(n int) uint64 { return (uint64(n) + 9) / 10 }

// Bucket hashes key into [0, n): the 64-bit FNV-1a hash of key's UTF-8
// bytes, modulo n. It is the bucket function of rules, for Go code that
// must agree with them (a split by weight, say). It never changes between
// versions, so a key lands in the same bucket on every replica and after
// every upgrade. Like math/rand.IntN, it panics if n <= 0; in a rule,
// bucket with n <= 0 is an error instead.
func Bucket(key string, n int) int {
	if n <= 0 {
		panic(fmt.Sprintf("cel.Bucket: n must be positive, got %d", n))
	}
	return int(fnv1a(key) % uint64(n))
}

// bucketBinding is bucket(string, int) for the interpreter.
func bucketBinding(key, n ref.Val) ref.Val {
	k, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key)
	}
	m, ok := n.(types.Int)
	if !ok {
		return types.MaybeNoSuchOverloadErr(n)
	}
	if m <= 0 {
		return types.NewErr("bucket: n must be positive, got %d", int64(m))
	}
	return types.Int(fnv1a(string(k)) % uint64(m))
}

// fnv1a is the 64-bit FNV-1a hash of s, without the allocation that
// hash/fnv's interface costs.
func fnv1a(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}
