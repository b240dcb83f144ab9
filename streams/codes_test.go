package streams

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestCodeOf(t *testing.T) {
	t.Parallel()
	notFound := &Error{Code: CodeNotFound, Msg: "no such model"}
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, CodeOK},
		{"Error", notFound, CodeNotFound},
		{"Error wrapped", fmt.Errorf("load: %w", notFound), CodeNotFound},
		{"Error wrapped twice", fmt.Errorf("a: %w", fmt.Errorf("b: %w", notFound)), CodeNotFound},
		{"Error joined", errors.Join(io.EOF, notFound), CodeNotFound},
		{"Error wins over its context cause", &Error{Code: CodeUnavailable, Err: context.DeadlineExceeded}, CodeUnavailable},
		{"Errorf", Errorf(CodeResourceExhausted, "queue full"), CodeResourceExhausted},
		{"deadline", context.DeadlineExceeded, CodeDeadlineExceeded},
		{"deadline wrapped", fmt.Errorf("wait: %w", context.DeadlineExceeded), CodeDeadlineExceeded},
		{"canceled", context.Canceled, CodeCanceled},
		{"canceled wrapped", fmt.Errorf("wait: %w", context.Canceled), CodeCanceled},
		{"plain", errors.New("boom"), CodeInternal},
		{"io.EOF", io.EOF, CodeInternal},
		{"plain wrapped", fmt.Errorf("x: %w", errors.New("boom")), CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := CodeOf(tc.err); got != tc.want {
				t.Errorf("CodeOf(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&Error{Code: CodeUnavailable}, true},
		{&Error{Code: CodeResourceExhausted}, true},
		{fmt.Errorf("x: %w", &Error{Code: CodeUnavailable}), true},
		{&Error{Code: CodeInvalidArgument}, false},
		{&Error{Code: CodeNotFound}, false},
		{&Error{Code: CodeDeadlineExceeded}, false},
		{&Error{Code: CodeCanceled}, false},
		{&Error{Code: CodeInternal}, false},
		{&Error{Code: "some_future_code"}, false},
		{context.DeadlineExceeded, false},
		{context.Canceled, false},
		{errors.New("boom"), false},
	}
	for _, tc := range tests {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) [code %q] = %v, want %v", tc.err, CodeOf(tc.err), got, tc.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	cause := errors.New("cause")
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Code: CodeInternal, Msg: "msg"}, "msg"},
		{&Error{Code: CodeInternal, Msg: "msg", Err: cause}, "msg"},
		{&Error{Code: CodeInternal, Err: cause}, "cause"},
		{&Error{Code: CodeInternal}, ""},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("(%+v).Error() = %q, want %q", *tc.err, got, tc.want)
		}
		if got := tc.err.Unwrap(); got != tc.err.Err {
			t.Errorf("Unwrap = %v, want %v", got, tc.err.Err)
		}
	}
}

func TestErrorf(t *testing.T) {
	t.Parallel()
	cause := errors.New("disk on fire")
	tests := []struct {
		name  string
		err   *Error
		code  Code
		msg   string
		cause error // must be reachable with errors.Is; nil: Err must be nil
	}{
		{"no args", Errorf(CodeInternal, "plain"), CodeInternal, "plain", nil},
		{"verbs", Errorf(CodeInvalidArgument, "field %s: %d", "x", 3), CodeInvalidArgument, "field x: 3", nil},
		{"%v does not wrap", Errorf(CodeInternal, "load: %v", cause), CodeInternal, "load: disk on fire", nil},
		{"%w wraps", Errorf(CodeUnavailable, "load: %w", cause), CodeUnavailable, "load: disk on fire", cause},
		{"%w of wrapped", Errorf(CodeUnavailable, "load: %w", fmt.Errorf("inner: %w", cause)), CodeUnavailable, "load: inner: disk on fire", cause},
		{"%w of context", Errorf(CodeUnavailable, "wait: %w", context.Canceled), CodeUnavailable, "wait: context canceled", context.Canceled},
		{"two %w", Errorf(CodeUnavailable, "a: %w, b: %w", io.EOF, cause), CodeUnavailable, "a: EOF, b: disk on fire", cause},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.err.Code != tc.code {
				t.Errorf("Code = %q, want %q", tc.err.Code, tc.code)
			}
			if tc.err.Msg != tc.msg || tc.err.Error() != tc.msg {
				t.Errorf("Msg = %q, Error() = %q, want %q", tc.err.Msg, tc.err.Error(), tc.msg)
			}
			if CodeOf(fmt.Errorf("outer: %w", tc.err)) != tc.code {
				t.Errorf("CodeOf of wrapped Errorf result = %q, want %q", CodeOf(fmt.Errorf("outer: %w", tc.err)), tc.code)
			}
			if tc.cause == nil {
				if tc.err.Err != nil {
					t.Errorf("Err = %v, want nil without %%w", tc.err.Err)
				}
				return
			}
			if !errors.Is(tc.err, tc.cause) {
				t.Errorf("errors.Is(%v, %v) = false, want the %%w cause reachable", tc.err, tc.cause)
			}
		})
	}
}

func TestContextError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		code Code
	}{
		{"deadline", context.DeadlineExceeded, CodeDeadlineExceeded},
		{"deadline wrapped", fmt.Errorf("x: %w", context.DeadlineExceeded), CodeDeadlineExceeded},
		{"canceled", context.Canceled, CodeCanceled},
		{"cause of canceled", context.Cause(canceledCtx()), CodeCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := ContextError(tc.err)
			if e.Code != tc.code {
				t.Errorf("ContextError(%v).Code = %q, want %q", tc.err, e.Code, tc.code)
			}
			if CodeOf(e) != tc.code {
				t.Errorf("CodeOf(ContextError(%v)) = %q, want %q", tc.err, CodeOf(e), tc.code)
			}
			if !errors.Is(e, tc.err) {
				t.Errorf("ContextError(%v) does not wrap its input", tc.err)
			}
			if e.Error() == "" {
				t.Error("empty message")
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	<-ctx.Done()
	if e := ContextError(ctx.Err()); e.Code != CodeDeadlineExceeded || !errors.Is(e, context.DeadlineExceeded) {
		t.Errorf("ContextError of an expired context = %+v", e)
	}
}

func canceledCtx() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
