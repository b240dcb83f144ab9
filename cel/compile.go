package cel

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	celgo "cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// Kind is what a rule is for, which decides the type it must have.
type Kind int

const (
	// Condition is a rule that decides: its type must be bool, or dyn
	// (then a value that is not bool fails the evaluation).
	Condition Kind = iota + 1
	// Transform is a rule that builds a value, which JSON encodes as the
	// next payload. Any type compiles.
	Transform
)

// String returns "condition" or "transform".
func (k Kind) String() string {
	switch k {
	case Condition:
		return "condition"
	case Transform:
		return "transform"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// CompileError is a rule that does not compile: a syntax error, a type
// error, an unknown name, or a condition that is not bool. Line and
// Column locate the first problem within the rule text (1-based, columns
// in characters), so the caller can add the rule's place in its file;
// both are 0 when CEL gives no location.
type CompileError struct {
	Line, Column int
	Msg          string // CEL's message for the first problem
	More         int    // how many further problems CEL reported
}

func (e *CompileError) Error() string {
	s := e.Msg
	if e.Line > 0 {
		s = fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
	}
	if e.More > 0 {
		s += fmt.Sprintf(" (and %d more)", e.More)
	}
	return s
}

// Program is a compiled rule. It is safe for concurrent use.
type Program struct {
	kind Kind
	typ  string
	prg  celgo.Program
}

// Type returns the rule's checked type in CEL's notation: "bool",
// "string", "map(string, dyn)", "dyn", ...
func (p *Program) Type() string { return p.typ }

// maxCached bounds the programs Compile keeps: far more than the rules of
// all deployed applications. Past it, an arbitrary program is forgotten
// to make room (and compiled again if asked for again).
const maxCached = 4096

type cacheKey struct {
	expr string
	kind Kind
}

var cache struct {
	sync.RWMutex
	m map[cacheKey]*Program
}

// Compile parses and type-checks expr as a rule of kind k in Sluice's
// environment and plans its evaluation. A rule that does not compile
// returns a *CompileError. Programs are cached by (expr, kind): while one
// stays cached (see maxCached), compiling the same text again returns the
// same *Program.
func Compile(expr string, kind Kind) (*Program, error) {
	key := cacheKey{expr, kind}
	cache.RLock()
	p := cache.m[key]
	cache.RUnlock()
	if p != nil {
		return p, nil
	}
	p, err := compile(expr, kind, CostLimit)
	if err != nil {
		return nil, err
	}
	cache.Lock()
	defer cache.Unlock()
	if q := cache.m[key]; q != nil {
		return q, nil // compiled meanwhile by another caller
	}
	if cache.m == nil {
		cache.m = map[cacheKey]*Program{}
	}
	if len(cache.m) >= maxCached {
		for k := range cache.m {
			delete(cache.m, k)
			break
		}
	}
	cache.m[key] = p
	return p, nil
}

// compile is Compile without the cache, with a cost limit of its own.
func compile(expr string, kind Kind, costLimit uint64) (*Program, error) {
	if kind != Condition && kind != Transform {
		return nil, fmt.Errorf("compile rule: unknown kind %d", int(kind))
	}
	if n := utf8.RuneCountInString(expr); n > MaxExprSize {
		return nil, &CompileError{Msg: fmt.Sprintf("rule of %d characters is longer than the limit of %d", n, MaxExprSize)}
	}
	env, err := environment()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, compileError(iss.Errors())
	}
	out := ast.OutputType()
	if kind == Condition && out.Kind() != types.BoolKind && out.Kind() != types.DynKind {
		e := &CompileError{Msg: fmt.Sprintf("a condition must be bool, but this rule is %s", celgo.FormatCELType(out))}
		rep := ast.NativeRep()
		if loc := rep.SourceInfo().GetStartLocation(rep.Expr().ID()); loc.Line() > 0 {
			e.Line, e.Column = loc.Line(), loc.Column()+1
		}
		return nil, e
	}
	prg, err := env.Program(ast,
		celgo.CostTracking(dynCost{}),
		celgo.CostLimit(costLimit),
		celgo.InterruptCheckFrequency(interruptEvery),
		celgo.EvalOptions(celgo.OptOptimize),
	)
	if err != nil {
		// Planning fails on constant arguments that cannot work, such as
		// a regular expression that does not compile.
		return nil, &CompileError{Msg: err.Error()}
	}
	return &Program{kind: kind, typ: celgo.FormatCELType(out), prg: prg}, nil
}

// compileError converts CEL's issues; there is at least one.
func compileError(errs []*celgo.Error) error {
	if len(errs) == 0 {
		return errors.New("compile rule: no error reported")
	}
	first := errs[0]
	e := &CompileError{Msg: first.Message, More: len(errs) - 1}
	if loc := first.Location; loc != nil && loc.Line() > 0 {
		e.Line, e.Column = loc.Line(), loc.Column()+1
	}
	return e
}
