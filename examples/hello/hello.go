// Package hello is the language classifier of the composition guide: an
// ingress that reads a language and a name and asks the matching responder
// through a handle.
package hello

import (
	"context"
	"strings"

	"github.com/sluice-serve/sluice/platform/serve"
)

// Request is the body the ingress reads.
type Request struct {
	Language string `json:"language"`
	Name     string `json:"name"`
}

// Responders greet a name in their language.
var (
	Spanish = serve.Func("SpanishResponder", func(_ context.Context, name string) (string, error) {
		return "Hola " + name, nil
	})
	French = serve.Func("FrenchResponder", func(_ context.Context, name string) (string, error) {
		return "Bonjour " + name, nil
	})
)

// Classifier picks a responder by language.
type Classifier struct {
	spanish, french *serve.Handle[string, string]
}

// NewClassifier takes handles to the two responders.
func NewClassifier(spanish, french *serve.Handle[string, string]) *Classifier {
	return &Classifier{spanish: spanish, french: french}
}

// Call answers one request.
func (c *Classifier) Call(ctx context.Context, req Request) (string, error) {
	switch strings.ToLower(req.Language) {
	case "spanish":
		return c.spanish.Remote(ctx, req.Name).Result(ctx)
	case "french":
		return c.french.Remote(ctx, req.Name).Result(ctx)
	}
	return "Please try again.", nil
}

// LanguageClassifier is the ingress deployment.
var LanguageClassifier = serve.Type[Request, string]("LanguageClassifier", NewClassifier)

// App is the hello application at /hello.
func App() *serve.Application {
	return serve.MustApp("hello", "/hello", LanguageClassifier.Bind(Spanish.Bind(), French.Bind()))
}
