package cel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// ErrRule is wrapped by every error an evaluation returns because of the
// rule or the data it met: a missing key, a type mismatch, the cost limit,
// bucket with n ≤ 0, a condition that is not bool, a transform result that
// JSON cannot hold. Callers answer it as the request's fault (HTTP 400 for
// a synchronous request, the dead-letter topic for an offline one):
//
//	if errors.Is(err, cel.ErrRule) { ... }
//
// An evaluation stopped by its context returns an error that wraps the
// context's error instead.
var ErrRule = errors.New("rule failed")

// ruleError is an error whose message stands alone but unwraps to ErrRule.
type ruleError struct{ msg string }

func (e *ruleError) Error() string { return e.msg }
func (e *ruleError) Unwrap() error { return ErrRule }

func ruleErrorf(format string, args ...any) error {
	return &ruleError{msg: fmt.Sprintf(format, args...)}
}

// Input is what a rule sees of one request at one place in the graph.
// Body, the upstream output, and the OIP tensors are parsed on first use
// and at most once per Input, so several rules evaluated on one Input
// share the work. An Input may be used by concurrent evaluations; its
// fields must not change after the first, and it must not be copied.
type Input struct {
	// Headers are the request's headers: request.headers. Names should
	// be lower-case; if any is not, rules see a lower-cased copy.
	Headers map[string]string
	// ID is the request id (request.id); Model the model the request
	// names, "" if none (request.model).
	ID, Model string
	// App and Deployment name the application and the deployment
	// evaluating the rule (app, deployment).
	App, Deployment string
	// Upstream names the deployment that produced Body, "" at the
	// ingress (upstream.name).
	Upstream string
	// Body is the payload: body is it parsed as JSON, and inputs its
	// tensors if it is an OIP inference request, in the REST JSON or the
	// compact payload form. Tensors' data aliases Body.
	Body []byte
	// UpstreamOutput is the upstream deployment's output, on an edge
	// after it: upstream.output is it parsed as JSON, upstream.outputs
	// its tensors if it is an OIP inference response.
	UpstreamOutput []byte
	// BodyText and OutputText say the payload or the output is plain
	// text (a Go deployment's string travels raw, content type
	// text/plain): body or upstream.output is then that string.
	BodyText, OutputText bool

	once       [5]sync.Once
	headers    map[string]string
	parsed     any
	tensors    map[string]any
	outParsed  any
	outTensors map[string]any
}

// The indexes of Input.once.
const (
	onceHeaders = iota
	onceBody
	onceInputs
	onceOutput
	onceOutputs
)

// headerMap returns the headers with lower-case names.
func (in *Input) headerMap() map[string]string {
	in.once[onceHeaders].Do(func() {
		in.headers = in.Headers
		for k := range in.Headers {
			if strings.ToLower(k) != k {
				in.headers = make(map[string]string, len(in.Headers))
				for k, v := range in.Headers {
					in.headers[strings.ToLower(k)] = v
				}
				break
			}
		}
		if in.headers == nil {
			in.headers = map[string]string{}
		}
	})
	return in.headers
}

// body returns Body parsed as JSON, or null.
func (in *Input) body() any {
	in.once[onceBody].Do(func() { in.parsed = payloadValue(in.Body, in.BodyText) })
	return in.parsed
}

// inputs returns Body's OIP input tensors by name.
func (in *Input) inputs() map[string]any {
	in.once[onceInputs].Do(func() { in.tensors = requestTensors(in.Body) })
	return in.tensors
}

// output returns UpstreamOutput parsed as JSON, or null.
func (in *Input) output() any {
	in.once[onceOutput].Do(func() { in.outParsed = payloadValue(in.UpstreamOutput, in.OutputText) })
	return in.outParsed
}

// outputs returns UpstreamOutput's OIP output tensors by name.
func (in *Input) outputs() map[string]any {
	in.once[onceOutputs].Do(func() { in.outTensors = responseTensors(in.UpstreamOutput) })
	return in.outTensors
}

// payloadValue is a payload as rules see it: text as a string, else
// parsed as JSON.
func payloadValue(b []byte, text bool) any {
	if text {
		return string(b)
	}
	return jsonValue(b)
}

// jsonValue parses b, or returns null if it is not JSON. JSON's null is
// null too.
func jsonValue(b []byte) any {
	v, ok := parseJSON(b)
	if !ok || v == nil {
		return types.NullValue
	}
	return v
}

// activation resolves the environment's variables from an Input, without
// building a map per evaluation.
type activation Input

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	in := (*Input)(a)
	switch name {
	case varRequest:
		return (*requestObj)(in), true
	case varBody:
		return in.body(), true
	case varInputs:
		return in.inputs(), true
	case varApp:
		return in.App, true
	case varDeployment:
		return in.Deployment, true
	case varUpstream:
		return (*upstreamObj)(in), true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() interpreter.Activation { return nil }

// Bool evaluates the rule and returns its bool value; a value of another
// type fails with ErrRule. ctx bounds the evaluation: a cancelled context
// stops a long comprehension.
func (p *Program) Bool(ctx context.Context, in *Input) (ok bool, err error) {
	defer recoverRule(&err)
	v, err := p.eval(ctx, in)
	if err != nil {
		return false, err
	}
	b, isBool := v.(types.Bool)
	if !isBool {
		return false, ruleErrorf("%s is %s, not bool", p.kind, v.Type().TypeName())
	}
	return bool(b), nil
}

// String evaluates the rule and returns its string value; a value of
// another type fails with ErrRule. A split key is such a rule. ctx
// bounds the evaluation as for Bool.
func (p *Program) String(ctx context.Context, in *Input) (s string, err error) {
	defer recoverRule(&err)
	v, err := p.eval(ctx, in)
	if err != nil {
		return "", err
	}
	str, isString := v.(types.String)
	if !isString {
		return "", ruleErrorf("%s is %s, not string", p.kind, v.Type().TypeName())
	}
	return string(str), nil
}

// bufs recycles the buffers JSON encodes into.
var bufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled keeps unusually large buffers out of the pool.
const maxPooled = 64 << 10

// JSON evaluates the rule and returns its value encoded as JSON (see
// docs/CEL.md for how each CEL type encodes); a value JSON cannot hold
// fails with ErrRule. ctx bounds the evaluation as for Bool.
func (p *Program) JSON(ctx context.Context, in *Input) (out []byte, err error) {
	defer recoverRule(&err)
	v, err := p.eval(ctx, in)
	if err != nil {
		return nil, err
	}
	buf := bufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooled {
			bufs.Put(buf)
		}
	}()
	enc := encoder{ctx: ctx}
	b, err := enc.appendJSON((*buf)[:0], v, 0)
	if err != nil {
		return nil, err
	}
	*buf = b
	return append([]byte(nil), b...), nil
}

// eval runs the program on in under the cost limit and ctx.
func (p *Program) eval(ctx context.Context, in *Input) (ref.Val, error) {
	if err := ctx.Err(); err != nil {
		return nil, interrupted(ctx)
	}
	if in == nil {
		in = &Input{}
	}
	act := (*activation)(in)
	var (
		v   ref.Val
		err error
	)
	if ctx.Done() == nil {
		// Nothing can cancel ctx: skip the per-evaluation context
		// plumbing that interrupt checks need.
		v, _, err = p.prg.Eval(act)
	} else {
		v, _, err = p.prg.ContextEval(ctx, act)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(ctx)
		}
		return nil, &ruleError{msg: err.Error()}
	}
	if _, isUnknown := v.(*types.Unknown); isUnknown {
		return nil, ruleErrorf("%s has an unknown value", p.kind)
	}
	return v, nil
}

// interrupted is the error of an evaluation ctx stopped.
func interrupted(ctx context.Context) error {
	if cause := context.Cause(ctx); cause != ctx.Err() {
		return fmt.Errorf("rule interrupted: %w: %w", ctx.Err(), cause)
	}
	return fmt.Errorf("rule interrupted: %w", ctx.Err())
}

// recoverRule turns a panic during evaluation into an ErrRule error; no
// rule or input should ever panic, but one must not take a replica down.
func recoverRule(err *error) {
	if r := recover(); r != nil {
		*err = ruleErrorf("rule evaluation failed: %v", r)
	}
}
